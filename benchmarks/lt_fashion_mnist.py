#!/usr/bin/env python3
"""Long-tailed Fashion-MNIST benchmark: CE, Balanced Softmax, PaCo and GPaCo with one recipe and 3 seeds.

    python benchmarks/lt_fashion_mnist.py    # 15 min on 2 CPU cores; writes docs/lt_fashion_mnist.{md,png}
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
import csv
import hashlib
import json
import os
import shlex
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from timm_paco.arg_types import decay_rate, finite_float, non_negative_int, positive_int, require_distinct
from timm_paco.data.fashion_mnist_pool import cap_per_class, fashion_mnist_root
from timm_paco.cli.method_modules import add_method_modules_arg, import_methods_of_argv
from timm_paco.methods import get_method, list_methods
from timm_paco.runs import (
    DEFAULT_N_MAX, FEW_SHOT_THR, IMB_FACTOR, LARGE_N_MAX, LARGE_RECIPE, MANY_SHOT_THR, RECIPE, TAU_NORM_GRID,
    TINY_N_MAX, TINY_N_TEST, TINY_RECIPE, find_checkpoint, first_task, method_flags, posthoc_runs, run_job, run_label,
    run_model, run_names, run_stage, run_tau_norm_job, second_stage_epochs, second_stages, validate_command,
    write_with_discussion,
)
DEFAULT_N_VAL = 200


def derived_runs() -> List[str]:
    """Runs built on another method's run of the same seed (CE's, at its selected setting): a second stage on its
    checkpoint, or a post-hoc change of its classifier; they have no setting of their own to tune."""
    return [t for t in run_names() if first_task(t) != t]


def prior_runs() -> List[str]:
    """The methods train.py ``--prior-tau`` applies to (a class prior)."""
    return [t for t in run_names() if first_task(t) == t and get_method(t).prior != 'none']


def method_smoothing(task: str) -> float:
    """train.py's label smoothing of ``task``'s (first) method."""
    return get_method(first_task(task)).smoothing or 0.0
METRICS = (('top1', 'overall'), ('many_acc', 'many'), ('medium_acc', 'medium'), ('few_acc', 'few'))


def _parse_args(argv=None):
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


Setting = Tuple[float, float]  # (prior tau, label smoothing) of one run


def default_setting(task: str) -> Setting:
    """train.py's own setting for ``task``: prior strength 1 and the task's label smoothing (a derived method's:
    its first task's)."""
    return 1.0, method_smoothing(task)


def budget_stem(budget: str, epochs: Optional[int]) -> str:
    """File stem of a budget's docs and default run folder: ``lt_fashion_mnist[_large][_e<epochs>]``."""
    return 'lt_fashion_mnist' + ('_large' if budget == 'large' else '') + (f'_e{epochs}' if epochs is not None else '')


_SETTING_KEYS = (('tau', '--prior-tau'), ('ls', '--smoothing'))  # per Setting field: run-name tag, train.py flag


def _overrides(task: str, setting: Setting) -> List[Tuple[str, str, float]]:
    """(run-name tag, train.py flag, value) of each field of ``setting`` that differs from ``default_setting``."""
    return [(tag, flag, value) for (tag, flag), value, default in zip(_SETTING_KEYS, setting, default_setting(task))
            if value != default]


def experiment_name(task: str, setting: Setting, seed: int) -> str:
    """Run folder name ``<task>-seed<seed>``, with ``-tau<tau>`` / ``-ls<smoothing>`` where they differ from
    ``default_setting(task)`` (so runs of the default recipe keep their names)."""
    return task + ''.join(f'-{tag}{value:g}' for tag, _, value in _overrides(task, setting)) + f'-seed{seed}'


def setting_flags(task: str, setting: Setting) -> List[str]:
    """train.py flags for ``setting``: ``--prior-tau`` / ``--smoothing`` where the run name carries them."""
    return [arg for _, flag, value in _overrides(task, setting) for arg in (flag, f'{value:g}')]


def _flag_values(flags: Sequence[str], fields: Dict) -> Dict:
    """The values ``flags`` (train.py arguments) give to ``fields`` (name -> a value of its type); the last
    occurrence wins, as in train.py. Other flags are ignored."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for key, value in fields.items():
        names = ['--' + key.replace('_', '-')] + (['-b'] if key == 'batch_size' else [])
        if isinstance(value, list):
            parser.add_argument(*names, dest=key, type=type(value[0]), nargs=len(value))
        else:
            parser.add_argument(*names, dest=key, type=type(value))
    known, _ = parser.parse_known_args(list(flags))
    return {key: value for key, value in vars(known).items() if value is not None}


def own_flag_values(method: str, recipe: Dict) -> Dict:
    """The train.py values of ``method``'s own quick-start flags at ``recipe`` (``--paco-queue-size 256`` ->
    ``paco_queue_size=256``), as args.yaml records them."""
    from timm_paco.cli.train_args import build_parser
    flags = method_flags(method, recipe)
    parsed = vars(build_parser()[1].parse_known_args(flags)[0])
    given = {flag.lstrip('-').replace('-', '_') for flag in flags if flag.startswith('--')}
    return {k: v for k, v in parsed.items() if k in given}


def recipe_mismatches(train_args: Dict, task: str, setting: Setting, seed: int, recipe: Dict,
                      train_flags: Sequence[str] = ()) -> List[str]:
    """``key=<trained> (this run: <wanted>)`` for each recipe field where a run's args.yaml (``train_args``) differs
    from what this invocation would train: the recipe, then ``train_flags`` (``--train-flags``), then the
    setting's flags, the order they reach train.py in."""
    wanted = dict(task=task, seed=seed, epochs=recipe['epochs'], batch_size=recipe['batch_size'], lr=recipe['lr'],
                  weight_decay=recipe['weight_decay'], warmup_epochs=recipe['warmup_epochs'],
                  img_size=recipe['img_size'], scale=list(recipe['scale']), paco_views=recipe['views'],
                  smoothing=setting[1])
    if task in prior_runs():
        wanted['prior_tau'] = setting[0]
    wanted.update(own_flag_values(first_task(task), recipe))
    wanted.update(_flag_values(list(train_flags) + setting_flags(task, setting), wanted))
    trained = dict(train_args)
    for key, default in zip(('prior_tau', 'smoothing'), default_setting(task)):
        if trained.get(key) is None:  # earlier releases' args.yaml kept flags as given: None is train.py's default
            trained[key] = default
    return [f'{k}={trained.get(k)!r} (this run: {v!r})' for k, v in wanted.items() if trained.get(k) != v]


def check_reused_run(train_dir: str, task: str, setting: Setting, seed: int, recipe: Dict,
                     train_flags: Sequence[str] = ()):
    """Refuse to reuse (``--resume``) a run trained with another recipe: run names do not hold the budget. A
    two-stage method's recipe is its first stage's (``<run>-stage1``)."""
    path = os.path.join(train_dir + ('-stage1' if task in second_stages() else ''), 'args.yaml')
    try:
        with open(path) as f:
            train_args = yaml.safe_load(f)
    except OSError as e:
        raise FileNotFoundError(f'--resume: {path} is missing, so the run cannot be checked ({e})') from e
    wrong = recipe_mismatches(train_args or {}, task, setting, seed, recipe, train_flags)
    if wrong:
        raise ValueError(f'--resume: {path} was trained with {", ".join(wrong)}; give this budget its own --output '
                         f'or delete the run')


def select_setting(task: str, val_top1: Dict[Setting, Sequence[float]]) -> Setting:
    """The setting with the best mean validation accuracy over seeds; a tie goes to ``default_setting(task)``."""
    default = default_setting(task)
    return max(val_top1, key=lambda setting: (statistics.fmean(val_top1[setting]), setting == default))


def read_summary(path: str, arg: str = '--settings-from') -> Dict:
    """A summary.json this script wrote; errors name ``arg``, the flag that pointed at it."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{arg} {path}: cannot read it as JSON ({e})') from e
    if not isinstance(data, dict) or not isinstance(data.get('summary'), dict):
        raise ValueError(f'{arg} {path}: no "summary" mapping (not a summary.json of this script)')
    return data


def read_selected_settings(path: str, tasks: Sequence[str], arg: str = '--settings-from') -> Dict[str, Setting]:
    """Each task's selected (prior tau, smoothing) in a summary.json this script wrote (tau 1 for CE)."""
    summary = read_summary(path, arg)['summary']
    settings = {}
    for task in tasks:
        entry = summary.get(task)
        if not isinstance(entry, dict) or 'smoothing' not in entry:
            raise ValueError(f'{arg} {path}: no selected setting for task {task!r} '
                             f'(it has {sorted(summary)})')
        tau = entry.get('prior_tau')
        settings[task] = (1.0 if tau is None else float(tau), float(entry['smoothing']))
    return settings


def data_dirs(output: str, n_max: int, n_test: Optional[int], n_val: int) -> Tuple[str, str]:
    """(training + test data folder, validation data folder) of a benchmark's ``--output``."""
    data = os.path.join(output, 'data', f'fashion_mnist_nmax{n_max}')
    return data + (f'_test{n_test}' if n_test else ''), f'{data}_val{n_val}'


def read_per_class(path: str) -> List[Dict]:
    """Rows of validate.py's per-class CSV with ``train_count`` / ``accuracy`` as numbers."""
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f'{path}: no per-class rows')
    for r in rows:
        if r['train_count'] == '' or r['accuracy'] == '':
            raise ValueError(f'{path}: class {r["class_index"]} lacks train_count or accuracy')
    return [dict(class_index=int(r['class_index']), train_count=int(r['train_count']),
                 accuracy=float(r['accuracy'])) for r in rows]


def mean_std(values: Sequence[float]):
    """(mean, sample standard deviation; 0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.)


def summarise(runs: Dict[str, List[Dict]]) -> Dict[str, Dict]:
    """Per task: mean / std of each metric over seeds and the per-class accuracy averaged over seeds."""
    summary = {}
    for task, results in runs.items():
        entry = {'seeds': [r['seed'] for r in results]}
        for key, _ in METRICS:
            values = [r[key] for r in results]
            if any(v is None for v in values):
                raise ValueError(f'{task}: metric {key} missing in a run (a split without test images?)')
            entry[key] = mean_std(values)
        eces = [r.get('ece') for r in results]  # None for runs validated before validate.py reported ECE
        entry['ece'] = mean_std(eces) if all(e is not None for e in eces) else None
        per_class = [read_per_class(r['per_class_file']) for r in results]
        counts = [[row['train_count'] for row in pc] for pc in per_class]
        if any(c != counts[0] for c in counts):
            raise ValueError(f'{task}: training class counts differ between seeds: {counts}')
        entry['train_count'] = counts[0]
        entry['class_accuracy'] = [
            mean_std([pc[c]['accuracy'] for pc in per_class]) for c in range(len(counts[0]))]
        summary[task] = entry
    return summary


def summarise_grid(grid: Dict[Tuple[str, Setting], List[Dict]]) -> List[Dict]:
    """One row per (task, setting): validation overall and the test metrics, mean / std over seeds."""
    rows = []
    for (task, (tau, smoothing)), results in grid.items():
        row = dict(task=task, prior_tau=tau if task in prior_runs() else None, smoothing=smoothing,
                   val_top1=mean_std([r['val_top1'] for r in results]))
        row.update({key: mean_std([r[key] for r in results]) for key, _ in METRICS})
        rows.append(row)
    return rows


def _legend_label(task: str, entry: Dict) -> str:
    return f'{run_label(task)} ({_setting_label(task, entry)})'


def _plot_calibration(ax, summary: Dict[str, Dict], colors: Dict[str, str]):
    """Overall test accuracy against ECE, one point (± std over seeds) per method with an ECE."""
    for task, entry in summary.items():
        if entry.get('ece') is None:
            continue
        (acc, acc_std), (ece, ece_std) = entry['top1'], entry['ece']
        ax.errorbar(ece, acc, xerr=ece_std, yerr=acc_std, fmt='o', ms=5, color=colors[task], capsize=2, lw=0.8)
        ax.annotate(run_label(task), (ece, acc), xytext=(4, 3), textcoords='offset points', fontsize=7)
    ax.set_xlabel('test ECE (%, 15 bins; lower is better)')
    ax.set_ylabel('test top-1 accuracy (%), overall')
    ax.set_title('accuracy and calibration, mean ± std over seeds', fontsize=9)
    ax.grid(alpha=0.3)


def plot(summary: Dict[str, Dict], path: str):
    """Left: one line per method, per-class accuracy (mean over seeds, band = ± std) against training count (log x);
    right, where the runs report ECE: overall accuracy against ECE per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    with_ece = any(entry.get('ece') is not None for entry in summary.values())
    fig, axes = plt.subplots(1, 2 if with_ece else 1, figsize=(14.5 if with_ece else 8.4, 4.6), squeeze=False)
    ax = axes[0][0]
    colors = {}
    cycle = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for k, (task, entry) in enumerate(summary.items()):
        order = sorted(range(len(entry['train_count'])), key=lambda c: entry['train_count'][c])
        x = [max(entry['train_count'][c], 1) for c in order]
        mean = [entry['class_accuracy'][c][0] for c in order]
        std = [entry['class_accuracy'][c][1] for c in order]
        line, = ax.plot(x, mean, marker='o', ms=4, label=_legend_label(task, entry),
                        color=cycle[k % len(cycle)], ls='-' if k < len(cycle) else '--')
        colors[task] = line.get_color()
        ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.12, lw=0)
    ax.axvline(MANY_SHOT_THR + 0.5, color='grey', ls='--', lw=0.8)
    ax.axvline(FEW_SHOT_THR - 0.5, color='grey', ls=':', lw=0.8)
    ax.set_xscale('log')
    ax.set_xlabel(f'training images per class (few < {FEW_SHOT_THR} ≤ medium ≤ {MANY_SHOT_THR} < many)')
    ax.set_ylabel('test top-1 accuracy (%), mean over seeds')
    ax.set_ylim(-2, 102)
    seeds = next(iter(summary.values()))['seeds']
    ax.set_title(f'Fashion-MNIST-LT (imbalance {IMB_FACTOR}), ResNet-32, seeds {seeds}')
    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: no point hidden
    if with_ece:
        _plot_calibration(axes[0][1], summary, colors)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(ms) -> str:
    return '–' if ms is None else f'{ms[0]:.2f} ± {ms[1]:.2f}'


def _findings(summary: Dict[str, Dict]) -> List[str]:
    lines = []
    for key, name in METRICS:
        best = max(summary, key=lambda t: summary[t][key][0])
        lines.append(f'- {name}: best {run_label(best)} ({_fmt(summary[best][key])})')
    contrastive = [t for t in summary if first_task(t) == t and get_method(t).projector]
    with_ece = [t for t in summary if summary[t].get('ece') is not None]
    if with_ece:
        best = min(with_ece, key=lambda t: summary[t]['ece'][0])
        lines.append(f'- ECE: lowest {run_label(best)} ({_fmt(summary[best]["ece"])})')
    baselines = [t for t in summary if t not in contrastive]
    if contrastive and baselines:
        for key, name in (('top1', 'overall'), ('few_acc', 'few-shot')):
            top_base = max(summary[t][key][0] for t in baselines)
            ahead = [run_label(t) for t in contrastive if summary[t][key][0] > top_base]
            lines.append(f'- {name}: ahead of the best baseline ({top_base:.2f}): '
                         f'{", ".join(ahead) if ahead else "none of " + ", ".join(run_label(t) for t in contrastive)}')
    return lines


def _view_forwards(summary: Dict[str, Dict]) -> str:
    """``--view-forward per-view`` (one forward per view) for ..., ``joint`` for ...: each trained method's own."""
    forwards: Dict[str, List[str]] = {}
    for task in (t for t in summary if first_task(t) == t):
        forwards.setdefault(get_method(task).view_forward, []).append(get_method(task).label)
    words = {'per-view': 'one forward per view', 'joint': 'one forward of all views'}
    return '; '.join(f'`--view-forward {mode}`, {words.get(mode, mode)}: {", ".join(labels)}'
                     for mode, labels in forwards.items())


def _method_lines(summary: Dict[str, Dict], recipe: Dict) -> List[str]:
    """One setup bullet per method of ``summary`` that trains a run of its own: model, own flags, second stage."""
    lines = []
    for task in (t for t in summary if first_task(t) == t):
        method, flags = get_method(task), method_flags(task, recipe)
        about = method.summary if method.summary.startswith(method.label) else f'{method.label} ({method.summary})'
        line = f'  - {about}: `{run_model(task)}`'
        line += f', `{" ".join(flags)}`' if flags else ''
        if task in second_stages():
            line += (f'; then its classifier alone for {second_stage_epochs(task, recipe["epochs"])} epochs more '
                     f'(`{" ".join(second_stages()[task]["flags"])}`, plain CE), whose checkpoint is evaluated')
        lines.append(line + '.')
    return lines


def _derived_lines(summary: Dict[str, Dict], recipe: Dict) -> List[str]:
    """Setup bullets of the derived methods in ``summary`` (those built on the CE run of each seed)."""
    lines = []
    for task in (t for t in summary if t in second_stages() and t in derived_runs()):
        lines.append(f'- {run_label(task)}: no run of its own: the {run_label(first_task(task))} run of each seed '
                     f'(the row above, its last checkpoint), then its classifier alone trained for '
                     f'{second_stage_epochs(task, recipe["epochs"])} epochs more '
                     f'(`{" ".join(second_stages()[task]["flags"])}`, the same second stage as DSCL\'s).')
    for task in (t for t in summary if t in posthoc_runs()):
        grid = f'{TAU_NORM_GRID[0]:g}, {TAU_NORM_GRID[1]:g}, …, {TAU_NORM_GRID[-1]:g}'
        lines.append(f'- {run_label(task)}: the {run_label(first_task(task))} checkpoint of each seed with its class '
                     f'weights divided by their norm to the power τ (`validate.py --tau-norm`), τ from {{{grid}}} '
                     f'chosen per seed on the validation split (`--features-file`, one pass): τ = '
                     + ', '.join(f'{t:g}' for t in summary[task]['tau_norm']) + ' for the seeds in order.')
    return lines


def _tau(tau: Optional[float]) -> str:
    return '–' if tau is None else f'{tau:g}'


def _smoothing(task: str, entry: Dict) -> str:
    """The label smoothing of ``task``'s training: ``0.1`` or, with a second stage that sets its own,
    ``0.1 → 0`` (stage 1 → stage 2)."""
    flags = second_stages().get(task, {}).get('flags', [])
    second = f' → {float(flags[flags.index("--smoothing") + 1]):g}' if '--smoothing' in flags else ''
    return f'{entry["smoothing"]:g}{second}'


def _setting_label(task: str, entry: Dict) -> str:
    """``τ = 0.75, ls 0.1`` for a legend (no τ for CE)."""
    tau = entry.get('prior_tau')
    return ('' if tau is None else f'τ = {tau:g}, ') + f'ls {_smoothing(task, entry)}'


def _tuning_lines(tuning: List[Dict], summary: Dict[str, Dict], n_val: int) -> List[str]:
    lines = [
        '## Settings selected on the validation split',
        '',
        f'Every method trains at every setting below with the same seeds: each `--prior-tau` (`logits + tau · '
        f'log p`; 1 is Balanced Softmax\'s and the PaCo papers\' value; CE has no prior) with each `--smoothing`. '
        f'The setting with the best mean validation accuracy ({n_val} training images per class outside the '
        f'training pool; ties go to the method\'s own default) is the one in the table above, in bold here. '
        f'Test columns are shown for the record; they played no part in the choice.',
        '',
        '| method | prior τ | smoothing | validation overall | test overall | test many | test medium | test few |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for row in tuning:
        entry = summary[row['task']]
        chosen = (entry.get('prior_tau'), entry['smoothing']) == (row['prior_tau'], row['smoothing'])
        cells = [_tau(row['prior_tau']), f'{row["smoothing"]:g}']
        cells = [f'**{c}**' for c in cells] if chosen else cells
        lines.append(f'| {run_label(row["task"])} | {" | ".join(cells)} | {_fmt(row["val_top1"])} | '
                     + ' | '.join(_fmt(row[k]) for k, _ in METRICS) + ' |')
    return lines + ['']


def write_markdown(summary: Dict[str, Dict], path: str, figure: str, command: str, recipe: Dict, n_max: int,
                   n_test: Optional[int], n_val: int, timings: Dict[str, float], tuning: Optional[List[Dict]] = None,
                   settings_from: Optional[str] = None, train_flags: str = ''):
    counts = next(iter(summary.values()))['train_count']
    seeds = next(iter(summary.values()))['seeds']
    test_set = (f'the first {n_test} test images of each class ({10 * n_test} in all)' if n_test
                else 'the full 10,000-image test set (1,000 per class)')
    lines = [
        '# Long-tailed Fashion-MNIST: ' + ', '.join(run_label(t) for t in summary),
        '',
        f'Reproduce: `{command}`',
        '',
        '| method | prior τ | smoothing | overall | many | medium | few | ECE |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for task, entry in summary.items():
        lines.append(f'| {run_label(task)} | {_tau(entry.get("prior_tau"))} | {_smoothing(task, entry)} | '
                     + ' | '.join(_fmt(entry[k]) for k, _ in METRICS) + f' | {_fmt(entry.get("ece"))} |')
    lines += [
        '',
        f'Test top-1 accuracy (%) on {test_set}, mean ± sample std over seeds {seeds}; ECE: expected calibration '
        f'error (%, 15 equal-width confidence bins, validate.py) on the same images, lower is better.',
        '',
        f'![per-class accuracy against training images per class]({os.path.basename(figure)})',
        '',
        '## Setup',
        '',
        f'- Data: the first {n_max} training images of each class, made long-tailed with imbalance factor '
        f'{IMB_FACTOR} (`n_c = int({n_max} · {IMB_FACTOR}^(c/9))`, seeded draw): {counts} images per class, '
        f'{sum(counts)} in all. Test: {test_set}.',
        f'- Splits by training images: many > {MANY_SHOT_THR}, medium {FEW_SHOT_THR}–{MANY_SHOT_THR}, '
        f'few < {FEW_SHOT_THR} (validate.py `--many-shot-thr {MANY_SHOT_THR} --few-shot-thr {FEW_SHOT_THR}`): '
        + ', '.join(f'{s} {sum(1 for n in counts if sp(n))} classes' for s, sp in (
            ('many', lambda n: n > MANY_SHOT_THR),
            ('medium', lambda n: FEW_SHOT_THR <= n <= MANY_SHOT_THR),
            ('few', lambda n: n < FEW_SHOT_THR))) + '.',
        f'- Same budget for every method: CIFAR ResNet-32 (`resnet32_cifar`; the contrastive methods wrap it under '
        f'their own name, adding only the projector), '
        f'{recipe["img_size"]}x{recipe["img_size"]} RGB input, '
        f'views `{recipe["views"]}` (two augmented views of every image unless a method\'s own flags below say '
        f'otherwise: the CE family averages its loss over both views, so the methods see the same augmented images '
        f'per step), the papers\' optimizer (`--opt {recipe["opt"]} --wd-bias-and-norm`: SGD momentum 0.9 without '
        f'Nesterov, weight decay on every parameter), each method\'s authors\' BatchNorm batches ('
        + _view_forwards(summary) + '), '
        f'lr {recipe["lr"]}, weight decay {recipe["weight_decay"]}, cosine schedule with '
        f'{recipe["warmup_epochs"]} warm-up epoch(s), batch {recipe["batch_size"]} images, '
        f'{recipe["epochs"]} epochs, random-resized-crop scale {tuple(recipe["scale"])}, '
        f'device {timings["device"]}. Loss settings: label smoothing as in the tables, each method\'s class prior '
        f'(logit adjustment on for the long-tailed counts), its loss defaults otherwise, and its own flags of the '
        f'recipe (`timm_paco.methods` Quickstart: the contrastive methods\' from their papers\' CIFAR-100-LT '
        f'ResNet-32 scripts, queue and key-encoder momentum scaled down to this small data set and short schedule):'
        + (f' Every run also had `{train_flags}` (`--train-flags`), which overrides the above.' if train_flags else ''),
        *_method_lines(summary, recipe),
        *_derived_lines(summary, recipe),
        f'- The last-epoch checkpoint is evaluated. Model selection (prior strength and smoothing, when several '
        f'are tried) '
        f'uses only a validation split: the {n_val} training images of each class that follow the first '
        f'{n_max} ({10 * n_val} images, balanced, none of them in training). The test set chooses nothing.'
        + (f' Here nothing is selected: each method trains at the setting the validation split selected in '
           f'`{settings_from}`, carried over unchanged.' if settings_from else ''),
        f'- Wall time: {timings["total"] / 60:.1f} min for {timings["runs"]} train + validate runs, '
        f'{timings["jobs"]} at a time with {timings["threads"]} torch thread(s) and {timings["workers"]} '
        f'data-loading process(es) each, on {timings["device"]}'
        + (f'; {timings["reused"]} more runs were reused with `--resume` (only their missing validation-split '
           f'scores, if any, were computed; {_reused_time(timings)}).' if timings['reused'] else '.'),
        '',
        *(_tuning_lines(tuning, summary, n_val) if tuning else []),
        '## Findings (computed from the table)',
        '',
        *_findings(summary),
        '',
    ]
    write_with_discussion(path, lines)


RUN_TIME_FILE = 'run_time.json'


def write_run_seconds(train_dir: str, seconds: float) -> float:
    """Record a run's own time (train + both validations, seconds) in its folder, for a later ``--resume``."""
    with open(os.path.join(train_dir, RUN_TIME_FILE), 'w') as f:
        json.dump({'seconds': round(seconds, 1)}, f)
    return seconds


def read_run_seconds(train_dir: str) -> Optional[float]:
    """A reused run's recorded time in seconds, or None for a run from before the time was recorded."""
    path = os.path.join(train_dir, RUN_TIME_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return float(json.load(f)['seconds'])


def _reused_time(timings: Dict) -> str:
    """How long the reused runs took when they were new, as far as it was recorded."""
    timed, untimed = timings['reused_timed'], timings['reused'] - timings['reused_timed']
    parts = [f'{timed} of them took {timings["reused_seconds"] / 60:.1f} min when new, their run times summed'
             ] if timed else []
    if untimed:
        parts.append(f'{untimed} {"more" if timed else "of them"} {"has" if untimed == 1 else "have"} no recorded '
                     f'run time')
    return '; '.join(parts)


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


def file_sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


FIRST_STAGE_FILE = 'first_stage.json'  # a derived run's record of the checkpoint it was built on


def check_derived_base(train_dir: str, checkpoint: str):
    """Refuse to reuse (``--resume``) a derived run built on another checkpoint than ``checkpoint`` (its first
    stage retrained since, or another setting's)."""
    path = os.path.join(train_dir, FIRST_STAGE_FILE)
    try:
        with open(path) as f:
            recorded = json.load(f)['sha256']
    except (OSError, ValueError, KeyError) as e:
        raise FileNotFoundError(f'--resume: {path} is missing or unreadable, so the run cannot be checked ({e})') from e
    if recorded != file_sha256(checkpoint):
        raise ValueError(f'--resume: {train_dir} was built on another checkpoint than {checkpoint} (retrained since?); '
                         f'delete the run')


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


def chosen_tau(train_dir: str) -> float:
    """The tau a post-hoc tau-norm run chose on the validation split (its ``tau_norm.json``)."""
    with open(os.path.join(train_dir, 'tau_norm.json')) as f:
        return float(json.load(f)['tau'])


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
    args = _parse_args(argv)
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


if __name__ == '__main__':
    from timm_paco.cli.errors import run_main
    sys.exit(run_main(main, 'lt_fashion_mnist.py'))
