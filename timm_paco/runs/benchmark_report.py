"""The Fashion-MNIST-LT benchmark's results (``timm_paco.runs.benchmark``): mean ± std over seeds, the per-class
figure, and the markdown table with its setup, the settings searched and the findings."""
import csv
import os
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from timm_paco.methods import get_method
from timm_paco.runs.benchmark_grid import Setting, derived_runs, prior_runs
from timm_paco.runs.commands import second_stage_epochs
from timm_paco.runs.discussion import write_with_discussion
from timm_paco.runs.recipes import (
    FEW_SHOT_THR, IMB_FACTOR, MANY_SHOT_THR, TAU_NORM_GRID, first_task, method_flags, posthoc_runs, run_label,
    run_model, second_stages,
)

METRICS = (('top1', 'overall'), ('many_acc', 'many'), ('medium_acc', 'medium'), ('few_acc', 'few'))


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
    return f'{run_label(task)} ({setting_label(task, entry)})'


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


def format_mean_std(ms) -> str:
    return '–' if ms is None else f'{ms[0]:.2f} ± {ms[1]:.2f}'


def _findings(summary: Dict[str, Dict]) -> List[str]:
    lines = []
    for key, name in METRICS:
        best = max(summary, key=lambda t: summary[t][key][0])
        lines.append(f'- {name}: best {run_label(best)} ({format_mean_std(summary[best][key])})')
    contrastive = [t for t in summary if first_task(t) == t and get_method(t).projector]
    with_ece = [t for t in summary if summary[t].get('ece') is not None]
    if with_ece:
        best = min(with_ece, key=lambda t: summary[t]['ece'][0])
        lines.append(f'- ECE: lowest {run_label(best)} ({format_mean_std(summary[best]["ece"])})')
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


def setting_label(task: str, entry: Dict) -> str:
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
        lines.append(f'| {run_label(row["task"])} | {" | ".join(cells)} | {format_mean_std(row["val_top1"])} | '
                     + ' | '.join(format_mean_std(row[k]) for k, _ in METRICS) + ' |')
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
                     + ' | '.join(format_mean_std(entry[k]) for k, _ in METRICS)
                     + f' | {format_mean_std(entry.get("ece"))} |')
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


def _reused_time(timings: Dict) -> str:
    """How long the reused runs took when they were new, as far as it was recorded."""
    timed, untimed = timings['reused_timed'], timings['reused'] - timings['reused_timed']
    parts = [f'{timed} of them took {timings["reused_seconds"] / 60:.1f} min when new, their run times summed'
             ] if timed else []
    if untimed:
        parts.append(f'{untimed} {"more" if timed else "of them"} {"has" if untimed == 1 else "have"} no recorded '
                     f'run time')
    return '; '.join(parts)
