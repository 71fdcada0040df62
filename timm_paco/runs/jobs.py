"""Running the quick start's and the benchmarks' stages: a command with its line printed and timed, the
checkpoint a training run wrote, and one train-then-validate job."""
import json
import os
import shlex
import subprocess
import time
from typing import Dict, Optional, Sequence, Tuple

from timm_paco.runs.commands import second_stage_command, train_command, validate_command
from timm_paco.runs.recipes import RECIPE, TAU_NORM_GRID, run_model, second_stages

__all__ = ['StageFailed', 'run_stage', 'find_checkpoint', 'run_job', 'run_tau_norm_job']


class StageFailed(RuntimeError):
    """A stage's command exited with a non-zero code."""


def run_stage(
        stage: str,
        argv: Sequence[str],
        log_file: Optional[str] = None,
        start: Optional[float] = None,
        threads: Optional[int] = None,
):
    """Print ``stage`` and the command line, run it; output streams to the console (or ``log_file``).

    ``threads`` sets ``OMP_NUM_THREADS`` for the command (torch's intra-op threads); None keeps torch's default.
    Raises ``StageFailed`` (a RuntimeError naming the stage and the exit code) when the command fails; the
    command's own message is above it (on the console or in ``log_file``).
    """
    start = time.time() if start is None else start
    env = dict(os.environ)
    prefix = ''
    if threads is not None:
        if threads < 1:
            raise ValueError(f'--threads: expected a positive thread count, got {threads}')
        env['OMP_NUM_THREADS'] = str(threads)
        prefix = f'OMP_NUM_THREADS={threads} '
    print(f'\n[{time.time() - start:7.1f}s] {stage}\n  $ {prefix}{shlex.join(argv)}', flush=True)
    if log_file is None:
        code = subprocess.run(argv, env=env).returncode
    else:
        with open(log_file, 'a') as log:
            log.write(f'$ {prefix}{shlex.join(argv)}\n')
            log.flush()
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        where = f'its message is at the end of {log_file}' if log_file else 'its message is above'
        raise StageFailed(f'{stage}: {os.path.basename(argv[1]) if len(argv) > 1 else argv[0]} exited with code '
                          f'{code} ({where})')


def find_checkpoint(train_dir: str) -> str:
    """The last-epoch checkpoint ``train.py`` wrote (no model selection on the test set)."""
    path = os.path.join(train_dir, 'last.pth.tar')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: train.py did not write its last checkpoint')
    return path


def run_job(
        task: str,
        data_dir: str,
        output: str,
        seed: int = 0,
        recipe: Optional[Dict] = None,
        log_file: Optional[str] = None,
        start: Optional[float] = None,
        stage_names: Optional[Tuple[str, str]] = None,
        workers: int = 1,
        threads: Optional[int] = None,
        device: str = 'cpu',
        extra_flags: Sequence[str] = (),
        experiment: Optional[str] = None,
        first_stage: Optional[str] = None,
) -> Dict:
    """Train ``task`` with ``seed`` into ``output/<experiment>/`` (default ``<task>-seed<seed>``) and validate its
    last checkpoint.

    A two-stage method (``second_stages``: DSCL, CE + cRT / LWS) trains its first stage into
    ``output/<experiment>-stage1/`` (or starts from the checkpoint ``first_stage``, e.g. a CE run shared by several
    second stages) and its second stage on that checkpoint into ``output/<experiment>/``, which is validated.
    ``stage_names`` labels the printed stages (default ``train <task> (seed <seed>)`` / ``validate …``; a second
    stage adds `` stage 2``). Returns validate.py's result dict (also in ``<train dir>/results.json``, with
    ``results_per_class.csv`` and ``results_per_class.png`` beside it).
    """
    r = dict(RECIPE if recipe is None else recipe)
    experiment = experiment or f'{task}-seed{seed}'
    train_dir = os.path.join(output, experiment)
    train_stage, validate_stage = stage_names or (f'train {task} (seed {seed})', f'validate {task} (seed {seed})')
    if task in second_stages():
        if first_stage is None:
            first = f'{experiment}-stage1'
            run_stage(f'{train_stage}, stage 1', train_command(task, data_dir, output, first, seed, r, workers,
                                                               device, extra_flags), log_file, start, threads)
            first_stage = find_checkpoint(os.path.join(output, first))
        run_stage(f'{train_stage}, stage 2', second_stage_command(
            task, data_dir, output, experiment, first_stage, seed, r, workers, device), log_file, start, threads)
    elif first_stage is not None:
        raise ValueError(f'first_stage: {task} has no second stage (those with one: {", ".join(second_stages())})')
    else:
        run_stage(train_stage, train_command(task, data_dir, output, experiment, seed, r, workers, device,
                                             extra_flags), log_file, start, threads)
    results_file = os.path.join(train_dir, 'results.json')
    run_stage(validate_stage,
              validate_command(run_model(task), find_checkpoint(train_dir), data_dir, results_file,
                               r['img_size'], workers, device), log_file, start, threads)
    with open(results_file) as f:
        return json.load(f)


def run_tau_norm_job(
        model: str,
        checkpoint: str,
        test_dir: str,
        val_dir: str,
        out_dir: str,
        img_size: int = RECIPE['img_size'],
        taus: Sequence[float] = TAU_NORM_GRID,
        log_file: Optional[str] = None,
        start: Optional[float] = None,
        stage_names: Tuple[str, str] = ('tau-norm sweep (validation split)', 'validate tau-norm (test)'),
        workers: int = 1,
        threads: Optional[int] = None,
        device: str = 'cpu',
) -> Dict:
    """Post-hoc tau-norm of a trained ``checkpoint``: its pre-logit features on ``val_dir``'s split
    (``validate.py --features-file``), the tau of ``taus`` with the best validation accuracy (ties: the smallest,
    0 being the model as trained), then the test split of ``test_dir`` scored at that tau (``--tau-norm``).

    Writes ``out_dir/tau_norm.json`` (the sweep and the chosen tau) and ``out_dir/results.json`` with validate.py's
    per-class files beside it; returns the test results with ``tau_norm`` (the chosen tau) added.
    """
    from timm_paco.eval import load_features, select_tau, sweep_tau_norm
    os.makedirs(out_dir, exist_ok=True)
    features_file = os.path.join(out_dir, 'val_features.safetensors')
    run_stage(stage_names[0], validate_command(model, checkpoint, val_dir, None, img_size, workers, device,
                                               ['--features-file', features_file]), log_file, start, threads)
    accuracies = sweep_tau_norm(*load_features(features_file), taus=taus)
    tau = select_tau(list(taus), accuracies)
    with open(os.path.join(out_dir, 'tau_norm.json'), 'w') as f:
        json.dump(dict(checkpoint=checkpoint, taus=list(taus), val_top1=accuracies, tau=tau), f, indent=2)
    results_file = os.path.join(out_dir, 'results.json')
    run_stage(f'{stage_names[1]} at tau {tau:g}', validate_command(
        model, checkpoint, test_dir, results_file, img_size, workers, device, ['--tau-norm', f'{tau:g}']),
        log_file, start, threads)
    with open(results_file) as f:
        return dict(json.load(f), tau_norm=tau)
