"""Quick start: train PaCo on long-tailed Fashion-MNIST on the CPU, then validate it.

    python -m timm_paco.quickstart                   # everything lands in ./output/quickstart/

Stages (each printed with its command line and elapsed time; ``train.py`` prints a progress line per batch
interval and epoch):

1. data: Debian's ``dataset-fashion-mnist`` IDX files (``/usr/share/datasets/fashion-mnist``) laid out for
   torchvision by ``prepare_fashion_mnist``, else torchvision's ``download=True``; then a balanced pool of the
   first ``--n-max`` training images of each class (IDX files again, so ``torch/fashion_mnist`` reads it).
2. train: ``train.py --dataset torch/fashion_mnist --imb-factor 0.01`` turns the pool into the exponential
   long tail ``n_c = int(n_max · 0.01^(c/9))`` (300, 179, 107, 64, 38, 23, 13, 8, 5, 3 images for the default
   ``n_max=300``) and trains ``paco_resnet32`` (CIFAR ResNet-32 + projector) at 16x16 on the CPU.
3. validate: ``validate.py`` on the full 10,000-image test set (1,000 per class) with overall and
   many (> 100 training images: 3 classes) / medium (20–100: 3) / few (< 20: 4) accuracy, a per-class CSV and a
   PNG of per-class accuracy against training count.

``RECIPE`` is the training recipe; ``benchmarks/lt_fashion_mnist.py`` trains every method with it.
Both scripts run ``train.py`` / ``validate.py`` from the repository checkout as subprocesses, exactly as a user
would.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from timm_paco.arg_types import non_negative_int, positive_int
from timm_paco.data.fashion_mnist import IDX_FILES, debian_fashion_mnist_available, prepare_fashion_mnist
from timm_paco.data.imbalance import long_tail_counts

__all__ = [
    'RECIPE', 'TINY_RECIPE', 'TINY_N_MAX', 'TINY_N_TEST', 'IMB_FACTOR', 'MANY_SHOT_THR', 'FEW_SHOT_THR',
    'DEFAULT_N_MAX', 'LARGE_N_MAX', 'LARGE_RECIPE', 'TASK_MODELS', 'TASK_FLAGS', 'repo_script', 'prepare_data',
    'read_idx', 'write_idx', 'cap_per_class',
    'train_command', 'validate_command', 'run_stage', 'find_checkpoint', 'run_job', 'main',
]

IMB_FACTOR = 0.01
DEFAULT_N_MAX = 300
MANY_SHOT_THR = 100
FEW_SHOT_THR = 20
NUM_CLASSES = 10

# task -> model: CE / Balanced Softmax train the plain backbone, PaCo / GPaCo the same backbone wrapped
TASK_MODELS = {
    'ce': 'resnet32_cifar',
    'balanced-softmax': 'resnet32_cifar',
    'paco': 'paco_resnet32',
    'gpaco': 'paco_resnet32',
}

# Shared by every method: same backbone, input, views (two augmented views of each image), optimiser,
# schedule, batch size and epochs. Values are train.py flags.
RECIPE = dict(
    epochs=20,
    batch_size=32,
    lr=0.03,
    weight_decay=5e-4,
    warmup_epochs=1,
    img_size=16,
    scale=(0.35, 1.0),
    views='randcls_sim',
    paco_queue_size=256,
    paco_momentum=0.9,
    log_interval=10,
)
# Loss settings of the contrastive methods: the papers' own CIFAR-100-LT ResNet-32 recipe (PaCo's and GPaCo's
# paco_cifar.py scripts: alpha 0.01, beta 1, gamma 1, temperature 0.05 for PaCo and 0.07 for GPaCo), the
# small-data setting closest to this one; their ImageNet defaults (alpha 0.05, temperature 0.2) are the flags'.
TASK_FLAGS = {
    'paco': ['--paco-alpha', '0.01', '--paco-temperature', '0.05'],
    'gpaco': ['--paco-alpha', '0.01', '--paco-temperature', '0.07'],
}
# smoke tests (--tiny): 200 .. 2 training images per class still populate many / medium / few
TINY_N_MAX = 200
TINY_N_TEST = 20
TINY_RECIPE = dict(RECIPE, epochs=1, batch_size=64, warmup_epochs=0, paco_queue_size=64, log_interval=2)
# the benchmark's larger budget (a GPU run of minutes): native 28 px, 1,000 images in the largest class,
# CIFAR's usual batch 128 / lr 0.1, 60 epochs; PaCo's queue and key-encoder momentum scaled to it
LARGE_N_MAX = 1000
LARGE_RECIPE = dict(RECIPE, epochs=60, batch_size=128, lr=0.1, warmup_epochs=3, img_size=28, paco_queue_size=1024,
                    paco_momentum=0.99, log_interval=20)

_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned byte data, 1-d labels / 3-d images


def repo_script(name: str) -> str:
    """Path of ``train.py`` / ``validate.py`` in the checkout ``timm_paco`` is installed from (``pip install -e .``)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: the quick start runs the repository\'s {name}; install timm-paco from a checkout '
            f'(git clone … && pip install -e .)')
    return path


def prepare_data(root: str, download: bool = True) -> str:
    """A torchvision Fashion-MNIST root under ``root``: Debian's package when installed, else torchvision's
    download (the only network access). Returns ``root``."""
    if debian_fashion_mnist_available():
        return prepare_fashion_mnist(root)
    if not download:
        raise FileNotFoundError(
            'Fashion-MNIST: Debian\'s dataset-fashion-mnist is not installed and download is disabled')
    from torchvision.datasets import FashionMNIST
    for train in (True, False):
        FashionMNIST(root, train=train, download=True)
    return root


def read_idx(path: str) -> np.ndarray:
    """An unsigned-byte IDX file as a uint8 array of its declared shape."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[0:2] != b'\x00\x00' or data[2] != 0x08:
        raise ValueError(f'{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})')
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f'{path}: header declares shape {shape} but holds {arr.size} values')
    return arr.reshape(shape)


def write_idx(path: str, arr: np.ndarray):
    """Write a uint8 array of 1 (labels) or 3 (images) dimensions as an IDX file."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim not in _IDX_MAGIC:
        raise ValueError(f'write_idx: expected a 1-d label or 3-d image array, got shape {arr.shape}')
    header = _IDX_MAGIC[arr.ndim].to_bytes(4, 'big') + b''.join(int(s).to_bytes(4, 'big') for s in arr.shape)
    tmp = path + '.part'
    with open(tmp, 'wb') as f:
        f.write(header + arr.tobytes())
    os.replace(tmp, path)


def _per_class(labels: np.ndarray, n: Optional[int], start: int = 0) -> np.ndarray:
    """Indices (file order) of samples ``start .. start + n - 1`` of each class; all samples when ``n`` is None."""
    if n is None:
        return np.arange(labels.shape[0])
    picks = []
    for c in np.unique(labels):
        of_class = np.flatnonzero(labels == c)
        if of_class.shape[0] < start + n:
            raise ValueError(f'class {c} has {of_class.shape[0]} images, fewer than the {start + n} asked for')
        picks.append(of_class[start:start + n])
    return np.sort(np.concatenate(picks))


def cap_per_class(src_root: str, dst_root: str, n_max: int, n_test: Optional[int] = None,
                  n_val: Optional[int] = None) -> List[int]:
    """Write a torchvision Fashion-MNIST root keeping the first ``n_max`` training images of each class (file
    order) and the whole test set (the first ``n_test`` of each class when given). Returns the training images
    per class written.

    ``n_val`` writes a validation root instead: its test files hold the ``n_val`` training images of each class
    that follow the first ``n_max`` (balanced, disjoint from every training image), for model selection.
    """
    if n_max < 1:
        raise ValueError(f'--n-max: expected a positive number of training images per class, got {n_max}')
    if n_test is not None and n_test < 1:
        raise ValueError(f'n_test: expected a positive number of test images per class or None, got {n_test}')
    if n_val is not None and (n_val < 1 or n_test is not None):
        raise ValueError(f'n_val: expected a positive number of validation images per class (without n_test), '
                         f'got {n_val}')
    src = os.path.join(src_root, 'FashionMNIST', 'raw')
    dst = os.path.join(dst_root, 'FashionMNIST', 'raw')
    for name in IDX_FILES:
        if not os.path.isfile(os.path.join(src, name)):
            raise FileNotFoundError(f'Fashion-MNIST file {os.path.join(src, name)} not found')
    os.makedirs(dst, exist_ok=True)

    def read(prefix):
        images = read_idx(os.path.join(src, f'{prefix}-images-idx3-ubyte'))
        labels = read_idx(os.path.join(src, f'{prefix}-labels-idx1-ubyte'))
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f'{src}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels')
        return images, labels

    train_images, train_labels = read('train')
    keep = _per_class(train_labels, n_max)
    if n_val is None:
        test_images, test_labels = read('t10k')
        test_keep = _per_class(test_labels, n_test)
    else:
        test_images, test_labels = train_images, train_labels
        try:
            test_keep = _per_class(train_labels, n_val, start=n_max)
        except ValueError as e:
            raise ValueError(f'--n-val {n_val}: {e}') from None
    for prefix, images, labels, rows in (('train', train_images, train_labels, keep),
                                         ('t10k', test_images, test_labels, test_keep)):
        write_idx(os.path.join(dst, f'{prefix}-images-idx3-ubyte'), images[rows])
        write_idx(os.path.join(dst, f'{prefix}-labels-idx1-ubyte'), labels[rows])
    return np.bincount(train_labels[keep]).tolist()


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
    """``train.py`` argv for ``task`` on the long-tailed Fashion-MNIST under ``data_dir`` (``extra_flags`` last)."""
    if task not in TASK_MODELS:
        raise ValueError(f'task: expected one of {sorted(TASK_MODELS)}, got {task!r}')
    r = dict(RECIPE if recipe is None else recipe)
    return [
        sys.executable, repo_script('train.py'),
        '--data-dir', data_dir,
        '--dataset', 'torch/fashion_mnist',
        '--train-split', 'train',
        '--val-split', '',  # no per-epoch test-set evaluation: validate.py scores the last checkpoint once
        '--val-interval', str(r['epochs']),
        '--checkpoint-hist', '1',
        '--num-classes', str(NUM_CLASSES),
        '--imb-factor', str(IMB_FACTOR),
        '--imb-seed', str(seed),
        '--model', TASK_MODELS[task],
        '--task', task,
        '--img-size', str(r['img_size']),
        '--scale', str(r['scale'][0]), str(r['scale'][1]),
        '--paco-views', r['views'],
        '--epochs', str(r['epochs']),
        '--warmup-epochs', str(r['warmup_epochs']),
        '-b', str(r['batch_size']),
        '--opt', 'sgd',
        '--momentum', '0.9',
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
    ] + TASK_FLAGS.get(task, []) + (
        ['--paco-queue-size', str(r['paco_queue_size']), '--paco-momentum', str(r['paco_momentum'])]
        if task == 'paco' else []) + list(extra_flags)


def validate_command(
        model: str,
        checkpoint: str,
        data_dir: str,
        results_file: Optional[str],
        img_size: int = RECIPE['img_size'],
        workers: int = 1,
        device: str = 'cpu',
) -> List[str]:
    """``validate.py`` argv: the test split under ``data_dir``, long-tail metrics with the thresholds above, and
    ``results_file`` (JSON) with ``<stem>_per_class.csv`` / ``.png`` beside it (None: no files written)."""
    files = ['--results-file', results_file, '--results-format', 'json'] if results_file else []
    return [
        sys.executable, repo_script('validate.py'),
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
    ]


def run_stage(
        stage: str,
        argv: Sequence[str],
        log_file: Optional[str] = None,
        start: Optional[float] = None,
        threads: Optional[int] = None,
):
    """Print ``stage`` and the command line, run it; output streams to the console (or ``log_file``).

    ``threads`` sets ``OMP_NUM_THREADS`` for the command (torch's intra-op threads); None keeps torch's default.
    Raises ``subprocess.CalledProcessError`` when the command fails.
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
        subprocess.run(argv, check=True, env=env)
        return
    with open(log_file, 'a') as log:
        log.write(f'$ {prefix}{shlex.join(argv)}\n')
        log.flush()
        subprocess.run(argv, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)


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
) -> Dict:
    """Train ``task`` with ``seed`` into ``output/<experiment>/`` (default ``<task>-seed<seed>``) and validate its
    last checkpoint.

    ``stage_names`` labels the two printed stages (default ``train <task> (seed <seed>)`` / ``validate …``).
    Returns validate.py's result dict (also in ``<train dir>/results.json``, with ``results_per_class.csv`` and
    ``results_per_class.png`` beside it).
    """
    r = dict(RECIPE if recipe is None else recipe)
    experiment = experiment or f'{task}-seed{seed}'
    train_dir = os.path.join(output, experiment)
    train_stage, validate_stage = stage_names or (f'train {task} (seed {seed})', f'validate {task} (seed {seed})')
    run_stage(train_stage, train_command(task, data_dir, output, experiment, seed, r, workers, device, extra_flags),
              log_file, start, threads)
    results_file = os.path.join(train_dir, 'results.json')
    run_stage(validate_stage,
              validate_command(TASK_MODELS[task], find_checkpoint(train_dir), data_dir, results_file,
                               r['img_size'], workers, device), log_file, start, threads)
    with open(results_file) as f:
        return json.load(f)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='timm-paco quick start: PaCo on long-tailed Fashion-MNIST (imbalance 0.01) on the CPU')
    parser.add_argument('--output', default=os.path.join('output', 'quickstart'), help='output folder')
    parser.add_argument('--task', default='paco', choices=sorted(TASK_MODELS), help='method (default: paco)')
    parser.add_argument('--n-max', type=positive_int, default=None,
                        help=f'training images of the largest class (default: {DEFAULT_N_MAX}; --tiny fixes it)')
    parser.add_argument('--seed', type=non_negative_int, default=0, help='seed of the long-tail draw and of training')
    parser.add_argument('--epochs', type=positive_int, default=None,
                        help=f'override the epochs (default: {RECIPE["epochs"]})')
    parser.add_argument('--tiny', action='store_true',
                        help=f'smoke-test budget: 1 epoch, {TINY_N_MAX} training images per class before the '
                             f'long tail, {TINY_N_TEST} test images per class')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch threads of train.py / validate.py (OMP_NUM_THREADS; default: torch\'s, all cores)')
    parser.add_argument('--no-download', action='store_true',
                        help='fail instead of downloading when Debian\'s dataset-fashion-mnist is missing')
    args = parser.parse_args(argv)
    if args.tiny and args.n_max is not None:
        parser.error(f'--n-max {args.n_max}: --tiny fixes {TINY_N_MAX} training images per class')
    return args


def main(argv=None) -> Dict:
    args = _parse_args(argv)
    start = time.time()
    recipe = dict(TINY_RECIPE if args.tiny else RECIPE)
    if args.tiny:
        n_max, n_test = TINY_N_MAX, TINY_N_TEST
    else:
        n_max, n_test = DEFAULT_N_MAX if args.n_max is None else args.n_max, None
    if args.epochs is not None:
        recipe['epochs'] = args.epochs
    output = os.path.abspath(args.output)
    os.makedirs(output, exist_ok=True)

    print(f'[{time.time() - start:7.1f}s] stage 1/3: data', flush=True)
    source = os.path.join(output, 'data', 'fashion_mnist')
    prepare_data(source, download=not args.no_download)
    data_dir = os.path.join(output, 'data', f'fashion_mnist_nmax{n_max}' + (f'_test{n_test}' if n_test else ''))
    pool = cap_per_class(source, data_dir, n_max, n_test)
    print(f'  Fashion-MNIST pool of {n_max} training images per class in {data_dir}; train.py --imb-factor '
          f'{IMB_FACTOR} keeps {long_tail_counts(max(pool), len(pool), IMB_FACTOR)} of them', flush=True)

    results = run_job(
        args.task, data_dir, output, args.seed, recipe, start=start, threads=args.threads,
        stage_names=(f'stage 2/3: train {args.task} (train.py)', 'stage 3/3: validate (validate.py)'))
    train_dir = os.path.join(output, f'{args.task}-seed{args.seed}')
    print(f'\n[{time.time() - start:7.1f}s] done. {args.task} on Fashion-MNIST-LT (imbalance {IMB_FACTOR}), '
          f'test accuracy (%):')
    print('  ' + ' | '.join(
        f'{name} ' + ('n/a' if results.get(key) is None else f'{results[key]:.2f}')
        for key, name in (('top1', 'overall'), ('many_acc', 'many'), ('medium_acc', 'medium'), ('few_acc', 'few'))))
    print(f'  results {os.path.join(train_dir, "results.json")}\n'
          f'  per class {os.path.join(train_dir, "results_per_class.csv")} / results_per_class.png')
    return results


if __name__ == '__main__':
    main()
