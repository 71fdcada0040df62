"""Quick start: train PaCo (or ``--task``) on long-tailed Fashion-MNIST on the CPU, then validate it.

    python -m timm_paco.quickstart                   # everything lands in ./output/quickstart/
    python -m timm_paco.quickstart --task dscl       # DSCL + PBSD, then its class-balanced cRT stage 2

Stages (each printed with its command line and elapsed time; ``train.py`` prints a progress line per batch
interval and epoch):

1. data: Debian's ``dataset-fashion-mnist`` IDX files (``/usr/share/datasets/fashion-mnist``) laid out for
   torchvision by ``prepare_fashion_mnist``, else torchvision's ``download=True``; then a balanced pool of the
   first ``--n-max`` training images of each class (IDX files again, so ``torch/fashion_mnist`` reads it).
2. train: ``train.py --dataset torch/fashion_mnist --imb-factor 0.01`` turns the pool into the exponential
   long tail ``n_c = int(n_max · 0.01^(c/9))`` (300, 179, 107, 64, 38, 23, 13, 8, 5, 3 images for the default
   ``n_max=300``) and trains ``paco_resnet32`` (CIFAR ResNet-32 + projector) at 16x16 on the CPU. A two-stage
   method (``--task dscl``, ``ce-crt``, ``ce-lws``) trains its first stage, then its classifier on it
   (``timm_paco.runs.second_stages``).
3. validate: ``validate.py`` on the full 10,000-image test set (1,000 per class) with overall and
   many (> 100 training images: 3 classes) / medium (20–100: 3) / few (< 20: 4) accuracy, a per-class CSV and a
   PNG of per-class accuracy against training count.

``timm_paco.runs.RECIPE`` is the training recipe; ``benchmarks/lt_fashion_mnist.py`` trains every method with it.
Both run ``python -m timm_paco.train`` / ``timm_paco.validate`` as subprocesses, exactly as a user would, so they
work from an installed wheel as from a checkout.
"""
import argparse
import os
import sys
import time
from typing import Dict

from timm_paco.arg_types import non_negative_int, positive_int
from timm_paco.cli.errors import run_main
from timm_paco.data.fashion_mnist_pool import cap_per_class, fashion_mnist_root
from timm_paco.data.imbalance import long_tail_counts
from timm_paco.cli.method_modules import add_method_modules_arg, import_methods_of_argv
from timm_paco.methods.paco import PACO
from timm_paco.runs import (
    DEFAULT_N_MAX, IMB_FACTOR, RECIPE, TINY_N_MAX, TINY_N_TEST, TINY_RECIPE, posthoc_runs, run_job, run_names,
    second_stages,
)

__all__ = ['main']


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='timm-paco quick start: PaCo on long-tailed Fashion-MNIST (imbalance 0.01) on the CPU')
    parser.add_argument('--output', default=os.path.join('output', 'quickstart'), help='output folder')
    import_methods_of_argv(argv)
    trained = [run for run in run_names() if run not in posthoc_runs()]
    parser.add_argument('--task', default=PACO.name, choices=trained,
                        help=f'method (default: {PACO.name}); a second-stage run ({", ".join(second_stages())}) '
                             f'trains its first stage, then its classifier on it')
    add_method_modules_arg(parser)
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
    parser.add_argument('--debug', action='store_true', help='print the traceback of an error (also TIMM_PACO_DEBUG=1)')
    parser.add_argument('--install-data', action='store_true',
                        help='install Debian\'s dataset-fashion-mnist with apt-get (sudo when not root) when it is '
                             'missing')
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
    fashion_mnist_root(source, download=not args.no_download, install=args.install_data)
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
    if results.get('ece') is not None:
        print(f"  expected calibration error {results['ece']:.2f} (15 bins)")
    for label, name in (('results', 'results.json'), ('per class', 'results_per_class.csv'),
                        ('per-class plot', 'results_per_class.png'), ('reliability diagram', 'results_reliability.png'),
                        ('confusion matrix', 'results_confusion.csv')):  # only the files written
        if os.path.isfile(os.path.join(train_dir, name)):
            print(f'  {label} {os.path.join(train_dir, name)}')
    return results


if __name__ == '__main__':
    sys.exit(run_main(main, 'python -m timm_paco.quickstart'))
