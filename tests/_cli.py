"""The command lines of the tests run in the test's own process, as their ``__main__`` runs them (``run_main``):
the same exit codes, stdout and stderr as the process, without its ~4 s of interpreter start and imports. For the
drills whose behaviour is not a process's (a signal, a kill, a race, a resource limit, loader workers)."""
import logging
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, os.path.join(REPO, 'train.py')]  # the checkout's entry point: timm_paco.train's cli
VALIDATE = [sys.executable, os.path.join(REPO, 'validate.py')]
DRIVERS = {'timm_paco.train': 'train.py', 'timm_paco.validate': 'validate.py'}


def train_main():
    from timm_paco.train import main
    return main


def entry(cmd):
    """(main, prog, argv) of the command line ``cmd`` (train.py, validate.py or ``python -m`` of the drivers, the
    Hub CLI, the converter or the segmentation CLI): what its ``__main__`` runs through ``run_main``."""
    if cmd[:len(TRAIN)] == TRAIN:
        return train_main(), 'train.py', cmd[len(TRAIN):]
    if cmd[:len(VALIDATE)] == VALIDATE:
        from timm_paco.validate import main
        return main, 'validate.py', cmd[len(VALIDATE):]
    module = cmd[2]
    if module in DRIVERS:
        import importlib
        return importlib.import_module(module).main, DRIVERS[module], cmd[3:]
    if module == 'timm_paco.seg':
        from timm_paco.seg.__main__ import main  # runs its command through run_main itself: returns the code
    elif module == 'timm_paco.hub':
        from timm_paco.hub.__main__ import main
    else:
        from timm_paco.convert import main
    return main, f'python -m {module}', cmd[3:]


def run_here(capsys, cmd):
    """Run the command line ``cmd`` in this process as its ``__main__`` does; returns (exit code, stdout,
    stderr)."""
    from timm_paco.cli.errors import run_main
    main, prog, argv = entry([str(a) for a in cmd])
    capsys.readouterr()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()  # logs go to this call's stderr through a handler of its own, not an earlier test's
    try:
        if prog == 'validate.py':  # its __main__ sets up the logging; train.py's and the seg trainer's main do
            from timm import utils
            utils.setup_default_logging()
        code = run_main(main, prog, argv)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    out = capsys.readouterr()
    return code, out.out, out.err


def run_script_here(capsys, path, argv):
    """The script at ``path`` (a benchmark) run in this process as its ``__main__`` runs it, its ``main`` through
    ``run_main``; returns (exit code, stdout, stderr)."""
    import importlib.util
    from timm_paco.cli.errors import run_main
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f'{name}_here', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    code = run_main(module.main, os.path.basename(path), [str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err
