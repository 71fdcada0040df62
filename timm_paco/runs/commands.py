"""The argv of ``python -m timm_paco.train`` and ``python -m timm_paco.validate`` for one Fashion-MNIST-LT run."""
import sys
from typing import Dict, List, Optional, Sequence

from timm_paco.methods import default_method, get_method
from timm_paco.runs.recipes import (
    FEW_SHOT_THR, IMB_FACTOR, MANY_SHOT_THR, NUM_CLASSES, RECIPE, first_task, method_flags, run_model, run_names,
    second_stages,
)

__all__ = ['TRAIN', 'VALIDATE', 'train_command', 'second_stage_command', 'second_stage_epochs', 'validate_command']

# the drivers, run from the installed package (a wheel or a checkout) in this interpreter
TRAIN = (sys.executable, '-m', 'timm_paco.train')
VALIDATE = (sys.executable, '-m', 'timm_paco.validate')


def train_command(
        task: str,
        data_dir: str,
        output: str,
        experiment: str,
        seed: int = 0,
        recipe: Optional[Dict] = None,
        workers: int = 1,
        device: str = 'cpu',
        extra_flags: Sequence[str] = (),
) -> List[str]:
    """``python -m timm_paco.train`` argv for ``task`` on the long-tailed Fashion-MNIST under ``data_dir``
    (``extra_flags`` last); a two-stage method's is its first stage's (``first_task``)."""
    if task not in run_names():
        raise ValueError(f'task: expected one of {", ".join(run_names())}, got {task!r}')
    r = dict(RECIPE if recipe is None else recipe)
    trained = first_task(task)
    return [
        *TRAIN,
        '--data-dir', data_dir,
        '--dataset', 'torch/fashion_mnist',
        '--train-split', 'train',
        '--val-split', '',  # no per-epoch test-set evaluation: validate.py scores the last checkpoint once
        '--val-interval', str(r['epochs']),
        '--checkpoint-hist', '1',
        '--num-classes', str(NUM_CLASSES),
        '--imb-factor', str(IMB_FACTOR),
        '--imb-seed', str(seed),
        '--model', run_model(task),
        '--task', trained,
        '--img-size', str(r['img_size']),
        '--scale', str(r['scale'][0]), str(r['scale'][1]),
        '--paco-views', r['views'],
        '--epochs', str(r['epochs']),
        '--warmup-epochs', str(r['warmup_epochs']),
        '-b', str(r['batch_size']),
        '--opt', r['opt'],
        '--momentum', '0.9',
        '--wd-bias-and-norm',  # the papers' optimizer: torch SGD with decay on every parameter
        '--lr', str(r['lr']),
        '--weight-decay', str(r['weight_decay']),
        '--sched', 'cosine',
        '--sched-on-updates',  # warm-up and cosine per update: a short schedule has few epochs to step on
        '--seed', str(seed),
        '--device', device,
        '--workers', str(workers),
        '--log-interval', str(r['log_interval']),
        '--output', output,
        '--experiment', experiment,
    ] + method_flags(trained, r) + _method_modules(trained) + list(extra_flags)


def _method_modules(method: str) -> List[str]:
    """``--method-modules`` naming the module of a method registered from outside timm_paco (train.py imports
    it before reading its flags)."""
    module = get_method(method).build.__module__
    return [] if module.split('.')[0] == 'timm_paco' else ['--method-modules', module]


def second_stage_epochs(task: str, epochs: int) -> int:
    """Epochs of ``task``'s second stage after a first stage of ``epochs``."""
    return max(1, round(epochs * second_stages()[task]['epochs_fraction']))


def second_stage_command(
        task: str,
        data_dir: str,
        output: str,
        experiment: str,
        first_stage: str,
        seed: int = 0,
        recipe: Optional[Dict] = None,
        workers: int = 1,
        device: str = 'cpu',
) -> List[str]:
    """``train.py`` argv of ``task``'s second stage (``second_stages``) on the checkpoint ``first_stage``: the same
    data, model, views and schedule with CE, the stage's flags and its share of the epochs."""
    stage = second_stages()[task]
    r = dict(RECIPE if recipe is None else recipe)
    r['epochs'] = second_stage_epochs(task, r['epochs'])
    argv = train_command(task, data_dir, output, experiment, seed, r, workers, device)
    argv[argv.index('--task') + 1] = default_method().name  # the classifier is retrained with cross-entropy
    cut = argv.index('--experiment') + 2  # the stage-1 task's own flags (loss, queue) do not apply to CE
    return argv[:cut] + ['--initial-checkpoint', first_stage] + stage['flags']


def validate_command(
        model: str,
        checkpoint: str,
        data_dir: str,
        results_file: Optional[str],
        img_size: int = RECIPE['img_size'],
        workers: int = 1,
        device: str = 'cpu',
        extra_flags: Sequence[str] = (),
) -> List[str]:
    """``python -m timm_paco.validate`` argv: the test split under ``data_dir``, long-tail metrics with the
    thresholds above, and ``results_file`` (JSON) with ``<stem>_per_class.csv`` / ``.png`` beside it (None: no files written);
    ``extra_flags`` last (e.g. ``--tau-norm 0.5``)."""
    files = ['--results-file', results_file, '--results-format', 'json'] if results_file else []
    return [
        *VALIDATE,
        '--data-dir', data_dir,
        '--dataset', 'torch/fashion_mnist',
        '--split', 'test',
        '--model', model,
        '--num-classes', str(NUM_CLASSES),
        '--checkpoint', checkpoint,
        '--img-size', str(img_size),
        '--crop-pct', '1.0',
        '--device', device,
        '--workers', str(workers),
        '-b', '256',
        '--lt-metrics',
        '--many-shot-thr', str(MANY_SHOT_THR),
        '--few-shot-thr', str(FEW_SHOT_THR),
        *files,
        *extra_flags,
    ]
