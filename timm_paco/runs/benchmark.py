#!/usr/bin/env python3
"""Long-tailed Fashion-MNIST benchmark: every method (``timm_paco.runs.run_names``) with one recipe and 3 seeds.

    python benchmarks/lt_fashion_mnist.py    # 15 min on 2 CPU cores; writes docs/lt_fashion_mnist.{md,png}
    python -m timm_paco.runs.benchmark       # the same from an installed package
    python benchmarks/lt_fashion_mnist.py --budget large --device cuda --jobs 4 --workers 3
                                             # minutes on a GPU; writes docs/lt_fashion_mnist_large.{md,png}

Every run uses ``timm_paco.runs.RECIPE`` (same backbone, input size, two augmented views per image, optimiser,
schedule, batch size, epochs) on the same data: the first ``--n-max`` training images of each class made
long-tailed with ``--imb-factor 0.01`` (the draw depends on the seed), validated on the first ``--n-test`` test
images of each class. ``--budget large`` trains with ``LARGE_RECIPE`` on ``LARGE_N_MAX`` images in the largest
class and validates on the whole test set. ``--jobs`` runs go in parallel, each with ``--threads`` torch threads. Seeds
(``--seeds``) fix both the long-tail draw and training. For each method the table gives mean ± sample standard
deviation over seeds of overall, many / medium / few top-1; the figure plots per-class accuracy (mean over seeds)
against training images per class.

Two knobs can be tuned, the same grid for every method: ``--prior-taus``, the class-prior strength of
``train.py --prior-tau`` (``logits + tau · log p``; Balanced Softmax, PaCo and GPaCo only, CE has no prior), and
``--smoothings``, ``train.py --smoothing`` (every method; default: each method's own, ``Method.smoothing``). Each
method trains at every setting of the grid with every seed and keeps the setting with the best mean accuracy on a
balanced validation split, the ``--n-val`` training images of each class that follow the pool. The test set
chooses nothing; the markdown lists every setting's validation and test accuracy. ``--settings-from`` instead
trains each method only at the setting an earlier run's ``summary.json`` selected, e.g. to see whether a ranking
holds at more ``--epochs`` without a second search (``--epochs N`` writes ``lt_fashion_mnist[_large]_eN.{md,png}``).

Runs go to ``--output/<task>[-tau<tau>][-ls<smoothing>]-seed<seed>/`` (checkpoints, ``results.json`` for the test set,
``val_results.json`` for the validation split, per-class CSV / PNG), their logs to ``--output/logs/``, the summary
to ``--output/summary.json``; ``--output`` defaults to ``output/<docs stem>``, one folder per budget, since run names
do not hold the budget. ``--resume`` reuses runs whose results exist, and stops with an error at one whose
``args.yaml`` records another recipe or setting (``--train-flags`` count, read as train.py reads them).
"""
import argparse
import json
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

from timm_paco.arg_types import decay_rate, finite_float, non_negative_int, positive_int, require_distinct
from timm_paco.cli.errors import run_main
from timm_paco.cli.method_modules import add_method_modules_arg, import_methods_of_argv
from timm_paco.data.fashion_mnist_pool import cap_per_class, fashion_mnist_root
from timm_paco.methods import get_method, list_methods
from timm_paco.runs.benchmark_grid import (
    DEFAULT_N_VAL, FIRST_STAGE_FILE, budget_stem, check_derived_base, check_reused_run, chosen_tau, data_dirs,
    derived_runs, experiment_name, file_sha256, method_smoothing, prior_runs, read_run_seconds, read_selected_settings,
    select_setting, setting_flags, write_run_seconds,
)
from timm_paco.runs.benchmark_report import METRICS, plot, summarise, summarise_grid, write_markdown
from timm_paco.runs.commands import validate_command
from timm_paco.runs.jobs import find_checkpoint, run_job, run_stage, run_tau_norm_job
from timm_paco.runs.recipes import (
    DEFAULT_N_MAX, LARGE_N_MAX, LARGE_RECIPE, RECIPE, TINY_N_MAX, TINY_N_TEST, TINY_RECIPE, first_task, posthoc_runs,
    run_model, run_names,
)

__all__ = ['parse_args', 'main', 'cli']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--output', default=None,
                        help='run folder (default: output/<the docs\' stem>, e.g. output/lt_fashion_mnist_large_e100: '
                             'run names do not hold the budget, so each budget gets its own folder)')
    parser.add_argument('--docs', default='docs', help='folder for lt_fashion_mnist.md / .png')
    import_methods_of_argv(argv)
    add_method_modules_arg(parser)
    parser.add_argument('--tasks', nargs='+', default=run_names(), choices=run_names())
    parser.add_argument('--seeds', nargs='+', type=non_negative_int, default=[0, 1, 2])
    parser.add_argument('--budget', default='small', choices=('small', 'large'),
                        help=f'small: RECIPE, --n-max {DEFAULT_N_MAX}, --n-test 200 (2 CPU cores); large: '
                             f'LARGE_RECIPE, --n-max {LARGE_N_MAX}, the whole test set (a GPU)')
    parser.add_argument('--n-max', type=positive_int, default=None,
                        help='training images per class before the long tail (default: the budget\'s)')
    parser.add_argument('--n-test', type=non_negative_int, default=None,
                        help='test images per class, the first in file order (default: the budget\'s; 0 = all 1,000)')
    parser.add_argument('--device', default='cpu', help='train.py / validate.py --device (default: cpu)')
    parser.add_argument('--workers', type=non_negative_int, default=1,
                        help='data-loading processes per run (default: 1)')
    parser.add_argument('--train-flags', default='',
                        help='extra train.py flags for every run, e.g. --train-flags="--paco-logit-adjust off"')
    parser.add_argument('--jobs', type=positive_int, default=2, help='runs in parallel (default: 2)')
    parser.add_argument('--threads', type=positive_int, default=1,
                        help='torch threads per run (OMP_NUM_THREADS, default: 1; jobs x threads = cores)')
    parser.add_argument('--epochs', type=positive_int, default=None,
                        help=f'override the epochs (default: the budget\'s, {RECIPE["epochs"]} for small); the '
                             f'docs become lt_fashion_mnist[_large]_e<epochs>.md / .png')
    parser.add_argument('--tiny', action='store_true',
                        help=f'smoke-test budget: 1 epoch, {TINY_N_MAX} training and {TINY_N_TEST} test images '
                             f'per class')
    parser.add_argument('--prior-taus', nargs='+', type=finite_float, default=None,
                        help='train.py --prior-tau values tried for every prior-based method (Balanced Softmax, '
                             'PaCo, GPaCo); each keeps the one with the best validation accuracy (default: 1)')
    parser.add_argument('--n-val', type=positive_int, default=None,
                        help=f'validation images per class, the training images after the pool (default: '
                             f'{DEFAULT_N_VAL}, tiny: {TINY_N_TEST})')
    parser.add_argument('--smoothings', nargs='+', type=decay_rate, default=None,
                        help='train.py --smoothing values tried for every method; each keeps the one with the '
                             'best validation accuracy (default: each method\'s own, '
                             + ', '.join(f'{t} {get_method(t).smoothing or 0:g}' for t in list_methods()) + ')')
    parser.add_argument('--settings-from', default=None, metavar='SUMMARY_JSON',
                        help='train each method only at the setting selected in an earlier run\'s summary.json '
                             '(its prior τ and smoothing, chosen there on the validation split), e.g. to carry '
                             'the choice to more --epochs; excludes --prior-taus / --smoothings')
    parser.add_argument('--resume', action='store_true',
                        help='reuse runs whose results.json exists (refused when their args.yaml holds another recipe)')
    args = parser.parse_args(argv)
    for task in [t for t in args.tasks if t in derived_runs()]:
        if first_task(task) not in args.tasks:  # a derived method needs the run it is built on
            args.tasks.insert(0, first_task(task))
    require_distinct(parser, ('--seeds', args.seeds), ('--prior-taus', args.prior_taus),
                     ('--smoothings', args.smoothings))
    if args.tiny and (args.output is None or os.path.normpath(args.docs) == 'docs'):
        parser.error('--tiny: pass --output and --docs (the default ones hold the benchmark\'s own runs and results)')
    return args


def _configs(args) -> List[Tuple[str, Tuple[float, float]]]:
    """(task, (prior tau, smoothing)) of each configuration: ``--settings-from``'s, else the grid of the flags."""
    if args.settings_from:
        if args.prior_taus is not None or args.smoothings is not None:
            raise ValueError('--settings-from fixes each method\'s setting; drop --prior-taus / --smoothings')
        fixed = read_selected_settings(args.settings_from, [t for t in args.tasks if t not in derived_runs()])
        return [(task, fixed[task]) for task in args.tasks if task not in derived_runs()]
    taus = args.prior_taus or [1.0]  # floats (argparse type=finite_float)
    return [(task, (tau, smoothing)) for task in args.tasks if task not in derived_runs()
            for tau in (taus if task in prior_runs() else [1.0])
            for smoothing in (args.smoothings if args.smoothings and get_method(task).smoothing is not None
                              else [method_smoothing(task)])]


def _budget(args) -> Tuple[Dict, int, Optional[int], int]:
    """(train.py recipe, training images of the largest class, test images per class or None: all, validation
    images per class) of ``--tiny`` / ``--budget`` and the size flags."""
    large = args.budget == 'large'
    recipe = dict(TINY_RECIPE if args.tiny else LARGE_RECIPE if large else RECIPE)
    if args.epochs is not None:
        recipe['epochs'] = args.epochs
    if args.tiny:
        n_max, n_test = TINY_N_MAX, TINY_N_TEST
    else:
        n_max = args.n_max if args.n_max is not None else LARGE_N_MAX if large else DEFAULT_N_MAX
        n_test = args.n_test if args.n_test is not None else 0 if large else 200
        n_test = n_test or None
    n_val = args.n_val if args.n_val is not None else TINY_N_TEST if args.tiny else DEFAULT_N_VAL
    return recipe, n_max, n_test, n_val


def _command_line(args, stem: str) -> str:
    """The command that reproduces this invocation's tables (flags at their defaults left out)."""
    large = args.budget == 'large'
    taus = args.prior_taus or [1.0]
    own_output = args.output and os.path.normpath(args.output) != os.path.join('output', stem)
    parts = [
        (' --tiny', args.tiny), (f' --budget {args.budget}', large),
        (f' --epochs {args.epochs}', args.epochs is not None),
        (f' --n-max {args.n_max}', args.n_max is not None and not args.tiny),
        (f' --n-test {args.n_test}', args.n_test is not None and not args.tiny),
        (f' --device {args.device}', args.device != 'cpu'),
        (f' --tasks {" ".join(args.tasks)}', args.tasks != run_names()),
        (f' --seeds {" ".join(map(str, args.seeds))}', args.seeds != [0, 1, 2]),
        (f' --train-flags="{args.train_flags}"', args.train_flags),
        (f' --prior-taus {" ".join(f"{t:g}" for t in taus)}', taus != [1.0]),
        (f' --smoothings {" ".join(f"{s:g}" for s in args.smoothings or ())}', args.smoothings),
        (f' --settings-from {args.settings_from}', args.settings_from),
        (f' --n-val {args.n_val}', args.n_val is not None),
        (f' --output {args.output}', own_output),
        (f' --docs {args.docs}', os.path.normpath(args.docs) != 'docs'),
        (f' --jobs {args.jobs} --workers {args.workers}', large),
    ]
    return 'python benchmarks/lt_fashion_mnist.py' + ''.join(text for text, given in parts if given)


def _train(ctx: Dict, label: str, experiment: str, task: str, setting, seed: int, base: Optional[str]) -> Dict:
    """Train and validate one run on the test set (a derived method: on ``base``, its first stage's checkpoint)."""
    args, recipe = ctx['args'], ctx['recipe']
    log_file = os.path.join(ctx['log_dir'], f'{experiment}.log')
    train_dir = os.path.join(ctx['output'], experiment)
    if task in posthoc_runs():
        results = run_tau_norm_job(
            run_model(task), base, ctx['data_dir'], ctx['val_dir'], train_dir, recipe['img_size'],
            log_file=log_file, start=ctx['start'], workers=args.workers, threads=args.threads, device=args.device,
            stage_names=(f'{label} tau-norm sweep (validation split)', f'{label} validate (test)'))
    else:
        flags = [] if base else ctx['train_flags'] + setting_flags(task, setting)
        results = run_job(
            task, ctx['data_dir'], ctx['output'], seed, recipe, start=ctx['start'], threads=args.threads,
            workers=args.workers, device=args.device, extra_flags=flags, experiment=experiment, log_file=log_file,
            stage_names=(f'{label} train', f'{label} validate (test)'), first_stage=base)
    if base:
        with open(os.path.join(train_dir, FIRST_STAGE_FILE), 'w') as f:
            json.dump({'checkpoint': base, 'sha256': file_sha256(base)}, f, indent=2)
    return results


def _validation_command(ctx: Dict, task: str, train_dir: str, base: Optional[str], val_file: str) -> List[str]:
    """validate.py argv of a run on the validation split (a post-hoc method: its first stage at its chosen tau)."""
    args, recipe = ctx['args'], ctx['recipe']
    extra = ['--tau-norm', f'{chosen_tau(train_dir):g}'] if task in posthoc_runs() else []
    checkpoint = base if task in posthoc_runs() else find_checkpoint(train_dir)
    return validate_command(run_model(task), checkpoint, ctx['val_dir'], val_file, recipe['img_size'],
                            args.workers, args.device, extra)


def _run_one(ctx: Dict, i: int, seed: int, task: str, setting) -> Dict:
    """Run ``i`` of the grid (or reuse it with ``--resume``): train, validate on the test set and the validation
    split; returns the test results with the validation top-1 and timing. A derived method (``derived_runs``) is built
    on its first task's run of the same seed and setting, which must exist."""
    args, output, start, recipe = ctx['args'], ctx['output'], ctx['start'], ctx['recipe']
    experiment = experiment_name(task, setting, seed)
    train_dir = os.path.join(output, experiment)
    base = (find_checkpoint(os.path.join(output, experiment_name(first_task(task), setting, seed)))
            if task in derived_runs() else None)
    results_file = os.path.join(train_dir, 'results.json')
    label = f'run {i}/{ctx["num_jobs"]}: {experiment}'
    reused = args.resume and os.path.isfile(results_file)
    run_start = time.time()
    if reused:
        if base:
            check_derived_base(train_dir, base)
        else:
            check_reused_run(train_dir, task, setting, seed, recipe, ctx['train_flags'])
        with open(results_file) as f:
            results = json.load(f)
        print(f'[{time.time() - start:7.1f}s] {label} reused', flush=True)
    else:
        results = _train(ctx, label, experiment, task, setting, seed, base)
    val_file = os.path.join(train_dir, 'val_results.json')
    if not (args.resume and os.path.isfile(val_file)):
        run_stage(f'{label} validate (validation split)', _validation_command(ctx, task, train_dir, base, val_file),
                  os.path.join(ctx['log_dir'], f'{experiment}.log'), start, args.threads)
    with open(val_file) as f:
        val = json.load(f)
    run_seconds = read_run_seconds(train_dir) if reused else write_run_seconds(train_dir, time.time() - run_start)
    print(f'[{time.time() - start:7.1f}s] {label}: validation overall {val["top1"]}; test '
          + ', '.join(f'{n} {results[k]}' for k, n in METRICS), flush=True)
    extra = dict(tau_norm=chosen_tau(train_dir)) if task in posthoc_runs() else {}
    return dict(results, seed=seed, val_top1=val['top1'], reused=reused, run_seconds=run_seconds,
                per_class_file=os.path.join(train_dir, 'results_per_class.csv'), **extra)


def _run_all(ctx: Dict, jobs: List[Tuple]) -> List[Dict]:
    """``_run_one`` of each (seed, task, setting) in ``jobs``, ``--jobs`` at a time, in order of ``jobs``."""
    with ThreadPoolExecutor(max_workers=ctx['args'].jobs) as pool:
        futures = [pool.submit(_run_one, ctx, ctx['first_index'] + i + 1, *job) for i, job in enumerate(jobs)]
        return [f.result() for f in futures]


def _timings(args, start: float, finished: List[Dict]) -> Dict:
    reused = sum(r['reused'] for r in finished)
    reused_seconds = [r['run_seconds'] for r in finished if r['reused'] and r['run_seconds'] is not None]
    return {'total': time.time() - start, 'runs': len(finished) - reused, 'reused': reused,
            'reused_timed': len(reused_seconds), 'reused_seconds': sum(reused_seconds), 'jobs': args.jobs,
            'threads': args.threads, 'workers': args.workers, 'device': args.device}


def main(argv=None):
    args = parse_args(argv)
    configs = _configs(args)
    start = time.time()
    recipe, n_max, n_test, n_val = _budget(args)
    stem = budget_stem(args.budget, args.epochs)
    output = os.path.abspath(args.output or os.path.join('output', stem))
    os.makedirs(output, exist_ok=True)
    os.makedirs(args.docs, exist_ok=True)

    source = fashion_mnist_root(os.path.join(output, 'data', 'fashion_mnist'))
    data_dir, val_dir = data_dirs(output, n_max, n_test, n_val)
    cap_per_class(source, data_dir, n_max, n_test)
    cap_per_class(source, val_dir, n_max, n_val=n_val)

    jobs = [(seed, task, setting) for seed in args.seeds for task, setting in configs]  # seed-major
    derived = [t for t in args.tasks if t in derived_runs()]
    ctx = dict(args=args, output=output, start=start, recipe=recipe, data_dir=data_dir, val_dir=val_dir,
               log_dir=os.path.join(output, 'logs'), num_jobs=len(jobs) + len(derived) * len(args.seeds),
               train_flags=shlex.split(args.train_flags), first_index=0)
    os.makedirs(ctx['log_dir'], exist_ok=True)
    finished = _run_all(ctx, jobs)
    grid = {config: [r for (_, *job), r in zip(jobs, finished) if tuple(job) == config] for config in configs}
    base_tasks = [t for t in args.tasks if t not in derived_runs()]
    selected = {task: select_setting(task, {s: [r['val_top1'] for r in grid[(t, s)]] for t, s in configs if t == task})
                for task in base_tasks}
    # then the derived methods, each on its first task's runs at the setting selected for it
    derived_jobs = [(seed, task, selected[first_task(task)]) for seed in args.seeds for task in derived]
    ctx['first_index'] = len(jobs)
    derived_results = _run_all(ctx, derived_jobs)
    finished += derived_results
    for task in derived:
        selected[task] = selected[first_task(task)]
        grid[(task, selected[task])] = [r for (_, t, _), r in zip(derived_jobs, derived_results) if t == task]
    summary = summarise({task: grid[(task, selected[task])] for task in args.tasks})
    for task in summary:
        summary[task]['prior_tau'] = selected[task][0] if task in prior_runs() else None
        summary[task]['smoothing'] = selected[task][1]
    for task in derived:
        if task in posthoc_runs():
            summary[task]['tau_norm'] = [r['tau_norm'] for r in grid[(task, selected[task])]]
    tuning = summarise_grid({k: v for k, v in grid.items() if k[0] not in derived}) if len(configs) > len(
        base_tasks) else None
    timings = _timings(args, start, finished)
    figure = os.path.join(args.docs, stem + '.png')
    markdown = os.path.join(args.docs, stem + '.md')
    plot(summary, figure)
    write_markdown(summary, markdown, figure, _command_line(args, stem), recipe, n_max, n_test, n_val, timings,
                   tuning, args.settings_from, args.train_flags)
    with open(os.path.join(output, 'summary.json'), 'w') as f:
        json.dump(dict(summary=summary, tuning=tuning, recipe=recipe, n_max=n_max, n_test=n_test, n_val=n_val,
                       timings=timings, settings_from=args.settings_from), f, indent=2)
    print(f'\n[{timings["total"]:7.1f}s] wrote {markdown} and {figure}')
    with open(markdown) as f:
        print(''.join(f.readlines()[4:4 + 2 + len(summary)]))
    return summary


def cli() -> int:
    """``python -m timm_paco.runs.benchmark`` / ``benchmarks/lt_fashion_mnist.py``; returns the exit code."""
    return run_main(main, 'lt_fashion_mnist.py')


if __name__ == '__main__':
    sys.exit(cli())
