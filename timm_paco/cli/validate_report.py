"""validate.py's report of one evaluation: top-1 / top-5 (ReaL labels when given), precision / recall / F1, the
many / medium / few accuracies of the training class counts, the per-class CSV and plot beside the results file,
and the summary line."""
import logging
from typing import Dict, Optional, Sequence

from timm_paco.data.metrics import long_tail_accuracy, per_class_rows
from timm_paco.eval import write_confusion_csv, write_per_class_csv

__all__ = ['default_side_file', 'accuracy_results', 'class_results', 'calibration_results', 'summary_line']

_logger = logging.getLogger('validate')


def default_side_file(args, suffix: str, kind: str = 'per_class') -> str:
    """``<results-file stem>[_<model or checkpoint>]_<kind><suffix>``: one file per evaluation in bulk mode."""
    if not args.results_file:
        return ''
    stem = args.results_file
    for ext in ('.csv', '.json'):
        if stem.endswith(ext):
            stem = stem[:-len(ext)]
    tag = getattr(args, 'bulk_tag', '')
    return f'{stem}{"_" + tag if tag else ""}_{kind}{suffix}'


def _plot_per_class(args, rows, plot_file: str) -> None:
    from timm_paco.eval.plot import plot_per_class_accuracy
    plot_per_class_accuracy(rows, plot_file, args.many_shot_thr, args.few_shot_thr, title=args.model)


def accuracy_results(meter, loss: float, real_labels=None) -> Dict[str, float]:
    """Top-1 / top-5 accuracy and error in % (of the ReaL labels when given), the mean cross-entropy and the
    number of images scored."""
    acc = meter.topk_accuracy()
    top1, top5 = (real_labels.get_accuracy(k=1), real_labels.get_accuracy(k=5)) if real_labels else (acc[1], acc[5])
    return dict(top1=round(top1, 4), top1_err=round(100 - top1, 4), top5=round(top5, 4),
                top5_err=round(100 - top5, 4), loss=round(loss, 6), images=int(meter.class_total.sum()))


def class_results(args, meter, class_counts: Optional[Sequence[int]]) -> Dict:
    """``--metrics-avg`` precision / recall / F1 and, with class counts, the many / medium / few accuracies;
    writes the per-class CSV and plot (by default beside ``--results-file`` when class counts are known)."""
    results = {}
    if args.metrics_avg:
        results.update(meter.precision_recall_f1())
    rows = per_class_rows(meter.class_correct, meter.class_total, class_counts, args.many_shot_thr, args.few_shot_thr)
    if class_counts is not None:
        lt = long_tail_accuracy(meter.class_correct, meter.class_total, class_counts,
                                args.many_shot_thr, args.few_shot_thr)
        results.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in lt.items()})
    per_class_file = args.per_class_file or (default_side_file(args, '.csv') if class_counts is not None else '')
    if per_class_file:  # without class counts (only when asked for): no train counts, no splits
        write_per_class_csv(per_class_file, rows)
    plot_file = args.per_class_plot or (default_side_file(args, '.png') if class_counts is not None else '')
    if plot_file:
        _plot_per_class(args, rows, plot_file)
    return results


def summary_line(results: Dict) -> str:
    """`` * Acc@1 … (err) Acc@5 …`` and, with long-tail metrics, `` | many … medium … few …``; a post-hoc
    classifier (``tau-norm τ``, ``logit-adjust τ``) is named first."""
    posthoc = ''.join(f'{name} {results[key]:g} ' for key, name in (('tau_norm', 'tau-norm'),
                                                                    ('logit_adjust', 'logit-adjust')) if key in results)
    if 'ncm' in results:
        posthoc = f"ncm ({results['ncm']} means) " + posthoc
    msg = f" * {posthoc}Acc@1 {results['top1']:.3f} ({results['top1_err']:.3f}) Acc@5 {results['top5']:.3f}"
    if 'many_acc' in results:
        msg += ' | ' + ' '.join(f"{s} {results[f'{s}_acc']}" for s in ('many', 'medium', 'few'))
    if results.get('ece') is not None:
        msg += f" | ECE {results['ece']:.2f}" + ''.join(
            f" {s} {results[f'{s}_ece']:.2f}" for s in ('many', 'medium', 'few') if results.get(f'{s}_ece') is not None)
    return msg


def calibration_results(args, calibration) -> Dict:
    """ECE overall and per group (%), and by default beside ``--results-file`` the reliability diagram
    (``_reliability.png``) and the confusion matrix (``_confusion.csv``, rows the true class)."""
    results = calibration.results()
    confusion_file = default_side_file(args, '.csv', 'confusion')
    if confusion_file:
        write_confusion_csv(confusion_file, calibration.confusion())
    plot_file = default_side_file(args, '.png', 'reliability')
    if plot_file:
        from timm_paco.eval.plot import plot_reliability
        plot_reliability(calibration.reliability_bins(), plot_file, results['ece'], title=args.model)
    return results
