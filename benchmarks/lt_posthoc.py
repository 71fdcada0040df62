#!/usr/bin/env python3
"""Post-hoc logit adjustment of the long-tailed Fashion-MNIST runs: how much of a method's gap is class bias?

    python benchmarks/lt_fashion_mnist.py                        # first: the runs and output/lt_fashion_mnist/
    python benchmarks/lt_posthoc.py --output output/lt_fashion_mnist   # ~5 min; docs/lt_fashion_mnist_posthoc.md

A method's test accuracy mixes two things: how well its features and classifier rank the classes, and where its
class bias sits between the head and the tail. This script separates them with one rule for every method and
seed. Each run of a method's selected setting (``--output/summary.json``) is scored by validate.py once on the
validation split and once on the test set, keeping the logits (``--logits-file``:
``<run>/val_logits.safetensors`` / ``test_logits.safetensors``, reused when present). The run then gets the
post-hoc τ of ``logits − τ · log p`` (Menon et al. 2021; ``p`` the run's training prior) with the best validation
accuracy over ``--taus`` (ties: the τ closest to 0), and its test accuracy at that τ is reported next to the
unadjusted one. The test set chooses nothing. A τ below 0 moves the bias back towards the head: the method
corrected too far towards the tail. Each run also gets one bias per class, fitted by cross-entropy on the
validation split (``fit_class_bias``): the most general class-bias correction, of which ``− τ · log p`` is a
one-parameter family. The markdown lists the ``--confusions`` class pairs the methods confuse most on the test set
(seeds pooled) as trained, at the post-hoc τ and with the class biases: a confusion the class biases remove was a
class bias, one they leave is class separation. Writes ``--docs/<stem>_posthoc.{md,png}`` and
``--output/posthoc.json`` (with each run's τ, class biases and confusion counts).
"""
import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Sequence

import torch
from torchvision.datasets import FashionMNIST

from timm_paco.runs.benchmark_grid import data_dirs, experiment_name, read_selected_settings, read_summary
from timm_paco.runs.benchmark_report import METRICS, format_mean_std, mean_std, setting_label
from timm_paco.arg_types import finite_float, positive_int, require_distinct
from timm_paco.data import load_class_counts
from timm_paco.data.metrics import long_tail_accuracy
from timm_paco.eval import (
    confusion_counts, confusion_rates, fit_class_bias, load_logits, logit_offset, select_tau, sweep_logit_adjust,
    top_confusions,
)
from timm_paco.runs import (
    FEW_SHOT_THR, MANY_SHOT_THR, find_checkpoint, run_label, run_model, run_stage, validate_command,
    write_with_discussion,
)

SPLITS = (('val', 'validation split', 'val_results.json'), ('test', 'test set', 'results.json'))
# how the test logits are scored: unadjusted, − τ · log p, + one bias per class
# (τ and the biases fitted on the validation split)
STATES = (('before', 'as trained'), ('after', '+ post-hoc τ'), ('bias', '+ class biases'))


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--output', default='output/lt_fashion_mnist',
                        help='a benchmarks/lt_fashion_mnist.py run folder, with summary.json')
    parser.add_argument('--docs', default='docs', help='folder for <stem>_posthoc.md / .png')
    parser.add_argument('--stem', default=None, help='docs file stem (default: the --output folder name)')
    parser.add_argument('--taus', type=finite_float, nargs='+', default=None,
                        help='post-hoc τ values tried on the validation split (default: -1.5 to 1.5 in steps of 0.05)')
    parser.add_argument('--confusions', type=positive_int, default=4,
                        help='class pairs listed: those with the largest test confusion rate in any method '
                             '(default: 4)')
    parser.add_argument('--jobs', type=positive_int, default=2, help='validate.py runs in parallel (default: 2)')
    parser.add_argument('--threads', type=positive_int, default=1, help='torch threads per run (default: 1)')
    parser.add_argument('--device', default='cpu', help='validate.py --device (default: cpu)')
    args = parser.parse_args(argv)
    require_distinct(parser, ('--taus', args.taus))
    return args


def split_metrics(confusion: torch.Tensor, counts: Sequence[int]) -> Dict[str, float]:
    """Overall / many / medium / few top-1 (%) from confusion counts [C, C] (diagonal: correct, rows: images)."""
    correct, total = confusion.diagonal(), confusion.sum(dim=1)
    out = {'top1': 100. * correct.sum().item() / total.sum().item()}
    lt = long_tail_accuracy(correct.tolist(), total.tolist(), counts, MANY_SHOT_THR, FEW_SHOT_THR)
    out.update({key: lt[key] for key, _ in METRICS[1:]})
    return out


def posthoc_run(train_dir: str, taus: Sequence[float]) -> Dict:
    """One run: the validation sweep, the chosen τ, and the test metrics without and with it."""
    counts = load_class_counts(train_dir)
    (val_logits, val_targets), (test_logits, test_targets) = (
        load_logits(os.path.join(train_dir, f'{split}_logits.safetensors')) for split, _, _ in SPLITS)
    test_confusion = {'before': confusion_counts(test_logits, test_targets)}
    unadjusted = [split_metrics(confusion_counts(val_logits, val_targets), counts),
                  split_metrics(test_confusion['before'], counts)]
    for (split, _, results_name), metrics in zip(SPLITS, unadjusted):
        with open(os.path.join(train_dir, results_name)) as f:
            recorded = json.load(f)['top1']
        if abs(metrics['top1'] - recorded) > 1e-3:  # a stale logits file or a different checkpoint
            raise ValueError(f'{train_dir}/{split}_logits.safetensors scores {metrics["top1"]:.4f} unadjusted, but '
                             f'{results_name} records {recorded}: delete the logits file and rerun')
    sweep = sweep_logit_adjust(val_logits, val_targets, counts, taus)
    tau = select_tau(taus, sweep)
    bias = fit_class_bias(val_logits, val_targets)
    test_confusion['after'] = confusion_counts(test_logits, test_targets, logit_offset(counts, tau) if tau else None)
    test_confusion['bias'] = confusion_counts(test_logits, test_targets, bias)
    out = dict(tau=tau, val_sweep=sweep, val_top1=sweep[taus.index(tau)], class_counts=list(counts),
               class_bias=bias.tolist())
    out.update({state: split_metrics(test_confusion[state], counts) for state, _ in STATES})
    out['test_confusion'] = {state: test_confusion[state].tolist() for state, _ in STATES}
    return out


def summarise(per_run: Dict[str, List[Dict]]) -> Dict[str, Dict]:
    out = {}
    for task, runs in per_run.items():
        entry = {'taus': [r['tau'] for r in runs]}
        for state, _ in STATES:
            entry[state] = {key: mean_std([r[state][key] for r in runs]) for key, _ in METRICS}
        entry['test_confusion'] = {  # counts summed over the seeds' runs (the same test set each time)
            state: sum(torch.tensor(r['test_confusion'][state]) for r in runs).tolist() for state, _ in STATES}
        out[task] = entry
    return out


def plot(per_run: Dict[str, List[Dict]], taus: Sequence[float], path: str, title: str):
    """Validation accuracy against post-hoc τ, one line per method (mean over seeds)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    for task, runs in per_run.items():
        mean = [statistics.fmean(r['val_sweep'][i] for r in runs) for i in range(len(taus))]
        ax.plot(taus, mean, label=run_label(task))
    ax.axvline(0.0, color='grey', ls=':', lw=0.8)
    ax.set_xlabel('post-hoc τ (scores: logits − τ · log p)')
    ax.set_ylabel('validation top-1 (%), mean over seeds')
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion_lines(summary: Dict[str, Dict], class_counts: Sequence[int], k: int) -> List[str]:
    """Markdown table of the ``k`` class pairs with the largest test confusion rate in any method, as trained and at
    the post-hoc τ (seeds pooled)."""
    rates = {task: {state: confusion_rates(torch.tensor(entry['test_confusion'][state])) for state, _ in STATES}
             for task, entry in summary.items()}
    pairs = top_confusions([r['before'] for r in rates.values()], k)
    names = FashionMNIST.classes
    lines = [
        '| test images of | predicted as | ' + ' | '.join(run_label(t) for t in summary) + ' |',
        '|---|---|' + '---|' * len(summary),
    ]
    for true, pred in pairs:
        cells = [f'{names[true]} ({class_counts[true]})', f'{names[pred]} ({class_counts[pred]})']
        cells += [' → '.join(f'{r[state][true, pred]:.1f}' for state, _ in STATES) for r in rates.values()]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def bias_lines(per_run: Dict[str, List[Dict]], class_counts: Sequence[int]) -> List[str]:
    """Markdown table of the fitted class biases (mean ± std over each method's runs), one row per class, next to
    ``− log p`` (centred): the bias of post-hoc τ = 1, the shape every ``τ · log p`` correction has."""
    log_prior = torch.tensor(class_counts, dtype=torch.float64).log()
    reference = -(log_prior - log_prior.mean())
    names = FashionMNIST.classes
    lines = [
        '| class (training images) | − log p, centred | ' + ' | '.join(run_label(t) for t in per_run) + ' |',
        '|---|---|' + '---|' * len(per_run),
    ]
    for c, count in enumerate(class_counts):
        cells = [f'{names[c]} ({count})', f'{reference[c]:+.2f}']
        for runs in per_run.values():
            values = [r['class_bias'][c] for r in runs]
            mean = statistics.fmean(values)
            cells.append(f'{mean:+.2f}' + (f' ± {statistics.stdev(values):.2f}' if len(values) > 1 else ''))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def write_markdown(path: str, figure: str, command: str, summary: Dict[str, Dict], trained: Dict[str, Dict],
                   taus: Sequence[float], seeds: Sequence[int], n_val: int, class_counts: Sequence[int],
                   confusions: int, per_run: Dict[str, List[Dict]]):
    lines = [
        f'# Post-hoc logit adjustment: {os.path.basename(path)[:-len("_posthoc.md")]}',
        '',
        f'Reproduce: `{command}`',
        '',
        '| method | trained with | post-hoc τ per seed | scores | overall | many | medium | few |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for task, entry in summary.items():
        for state, label in STATES:
            cells = [run_label(task), setting_label(task, trained[task]),
                     ' / '.join(f'{t:g}' for t in entry['taus'])] if state == 'before' else ['', '', '']
            scores = [format_mean_std(entry[state][k]) for k, _ in METRICS]
            lines.append('| ' + ' | '.join(cells + [label] + scores) + ' |')
    lines += [
        '',
        f'Test top-1 accuracy (%), mean ± sample std over seeds {list(seeds)}. Each run\'s τ is the one of '
        f'{len(taus)} values from {min(taus):g} to {max(taus):g} with the best accuracy on the validation split '
        f'({n_val} training images per class outside the training pool; ties: the τ closest to 0); the test set '
        f'chooses nothing. τ < 0 moves the class bias back towards the head, τ > 0 further towards the tail. '
        f'"+ class biases": each run\'s logits plus one bias per class, fitted by cross-entropy on the same '
        f'validation split (bias-only recalibration, the most general class-bias correction; the biases are '
        f'below and in `posthoc.json`).',
        '',
        f'![validation accuracy against post-hoc τ]({os.path.basename(figure)})',
        '',
        '## Largest confusions',
        '',
        *confusion_lines(summary, class_counts, confusions),
        '',
        f'Share (%) of a class\'s test images predicted as another class, the seeds\' runs pooled, as trained → at '
        f'each run\'s post-hoc τ → with its class biases; in brackets the training images per class. The '
        f'{confusions} pairs with the largest rate as trained in any method.',
        '',
        '## Class biases',
        '',
        *bias_lines(per_run, class_counts),
        '',
        'The bias added to each class\'s logit by "+ class biases", mean ± sample std over the seeds\' runs (each '
        'run\'s biases sum to 0, so only differences between classes matter). A method whose column has the shape '
        'of `− log p` (its training prior) times some τ needs nothing a post-hoc τ cannot give; a positive bias '
        'is a class the method under-predicts, a negative one a class it over-predicts.',
        '',
    ]
    write_with_discussion(path, lines)


def main(argv=None):
    args = _parse_args(argv)
    taus = [round(-1.5 + 0.05 * i, 2) for i in range(61)] if args.taus is None else list(args.taus)
    output = os.path.abspath(args.output)
    summary_file = os.path.join(output, 'summary.json')
    data = read_summary(summary_file, '--output')
    tasks = list(data['summary'])
    settings = read_selected_settings(summary_file, tasks, '--output')
    data_dir, val_dir = data_dirs(output, data['n_max'], data['n_test'], data['n_val'])
    start = time.time()

    runs = [(task, seed) for task in tasks for seed in data['summary'][task]['seeds']]
    todo = []
    for task, seed in runs:
        train_dir = os.path.join(output, experiment_name(task, settings[task], seed))
        for split, name, _ in SPLITS:
            logits_file = os.path.join(train_dir, f'{split}_logits.safetensors')
            if not os.path.isfile(logits_file):
                cmd = validate_command(run_model(task), find_checkpoint(train_dir),
                                       val_dir if split == 'val' else data_dir, None,
                                       data['recipe']['img_size'], 1, args.device)
                todo.append((f'{os.path.basename(train_dir)}: logits on the {name}',
                             cmd + ['--logits-file', logits_file]))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        log = os.path.join(output, 'logs', 'posthoc.log')
        os.makedirs(os.path.dirname(log), exist_ok=True)
        for future in [pool.submit(run_stage, stage, cmd, log, start, args.threads) for stage, cmd in todo]:
            future.result()

    per_run = {task: [] for task in tasks}
    for task, seed in runs:
        result = posthoc_run(os.path.join(output, experiment_name(task, settings[task], seed)), taus)
        per_run[task].append(dict(result, seed=seed))
    summary = summarise(per_run)

    stem = args.stem or os.path.basename(output)
    os.makedirs(args.docs, exist_ok=True)
    markdown = os.path.join(args.docs, f'{stem}_posthoc.md')
    figure = os.path.join(args.docs, f'{stem}_posthoc.png')
    plot(per_run, taus, figure, f'{stem}: post-hoc logit adjustment, seeds {data["summary"][tasks[0]]["seeds"]}')
    command = f'python benchmarks/lt_posthoc.py --output {args.output}' + (
        f' --stem {args.stem}' if args.stem else '') + (
        f' --docs {args.docs}' if os.path.normpath(args.docs) != 'docs' else '') + (
        f' --confusions {args.confusions}' if args.confusions != 4 else '') + (
        f' --taus {" ".join(f"{t:g}" for t in taus)}' if args.taus is not None else '') + (
        f' --device {args.device}' if args.device != 'cpu' else '')
    class_counts = per_run[tasks[0]][0]['class_counts']
    if any(r['class_counts'] != class_counts for runs in per_run.values() for r in runs):
        raise ValueError(f'the runs in {output} were trained on different class counts: their confusions do not '
                         f'compare')
    write_markdown(markdown, figure, command, summary, data['summary'], taus,
                   data['summary'][tasks[0]]['seeds'], data['n_val'], class_counts, args.confusions, per_run)
    with open(os.path.join(output, 'posthoc.json'), 'w') as f:
        json.dump(dict(taus=taus, summary=summary, runs=per_run, validated=len(todo)), f, indent=2)
    print(f'[{time.time() - start:7.1f}s] {len(todo)} validate.py runs; wrote {markdown} and {figure}')
    return summary


if __name__ == '__main__':
    from timm_paco.cli.errors import run_main
    sys.exit(run_main(main, 'lt_posthoc.py'))
