"""``--method-modules MODULE …``: modules imported before a command's flags are read, each registering its methods
(``timm_paco.methods.register_method``), so that ``--task`` and the help know them. Installed packages register
through the ``timm_paco.methods`` entry-point group without it."""
import argparse
import sys
from typing import Optional, Sequence

from timm_paco.cli.usage import UsageError
from timm_paco.methods import import_method_modules

__all__ = ['METHOD_MODULES_HELP', 'add_method_modules_arg', 'import_methods_of_argv']

METHOD_MODULES_HELP = ('Python modules to import before the flags are read, each registering its methods '
                       '(timm_paco.methods.register_method) for --task; installed packages register through the '
                       'timm_paco.methods entry-point group without it')


def add_method_modules_arg(parser) -> None:
    parser.add_argument('--method-modules', type=str, nargs='+', default=None, metavar='MODULE',
                        help=METHOD_MODULES_HELP)


def import_methods_of_argv(argv: Optional[Sequence[str]]) -> None:
    """Import the modules of ``--method-modules`` in ``argv`` (``sys.argv[1:]`` when None); ``UsageError`` naming
    the flag and the module for one that cannot be imported."""
    pre = argparse.ArgumentParser(add_help=False)
    add_method_modules_arg(pre)
    modules = pre.parse_known_args(sys.argv[1:] if argv is None else argv)[0].method_modules or ()
    try:
        import_method_modules(modules)
    except ImportError as e:
        raise UsageError(f'--method-modules: {e}; the module must be importable (on PYTHONPATH, or '
                         f'installed)') from None
