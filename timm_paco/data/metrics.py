"""Long-tail classification metrics: overall top-k, many / medium / few-shot and per-class accuracy (the counts
from torchmetrics, ``LongTailMeter``; the grouping by training counts here).

Classes are split by their number of *training* images ``n_c``: many-shot ``n_c > many_thr``, few-shot
``n_c < few_thr``, medium-shot ``few_thr <= n_c <= many_thr`` (defaults 100 and 20, as in Liu et al.'s
OLTR / ImageNet-LT protocol). Split accuracy is the accuracy over all validation images of the classes in
the split, so the overall top-1 is the validation-count-weighted mean of the three split accuracies.
Accuracies are in percent, like timm's ``validate.py``.
"""
from typing import Dict, List, Optional, Sequence

import torch

SPLITS = ('many', 'medium', 'few')
AVERAGES = ('micro', 'macro', 'weighted')  # of precision / recall / F1


def _check_thresholds(many_thr: int, few_thr: int):
    if few_thr > many_thr + 1:
        raise ValueError(
            f'few_thr ({few_thr}) must be <= many_thr + 1 ({many_thr + 1}): '
            f'medium-shot classes have few_thr <= count <= many_thr')


def class_split(count: int, many_thr: int = 100, few_thr: int = 20) -> str:
    """'many' if count > many_thr, 'few' if count < few_thr, else 'medium'."""
    if count > many_thr:
        return 'many'
    if count < few_thr:
        return 'few'
    return 'medium'


def class_splits(class_counts: Sequence[int], many_thr: int = 100, few_thr: int = 20) -> List[str]:
    """Split name ('many' | 'medium' | 'few') for each class index, from training counts [C]."""
    _check_thresholds(many_thr, few_thr)
    return [class_split(int(n), many_thr, few_thr) for n in class_counts]


class LongTailMeter:
    """Top-k accuracy, per-class counts and precision / recall / F1 over batches of logits, on torchmetrics
    (``MulticlassStatScores``: top-k hits and per-class counts; ``MulticlassPrecision`` / ``Recall`` / ``F1Score``,
    which share one state); the many / medium / few grouping of those counts is ``long_tail_accuracy``.

    ``update(output [B, C], target [B])``; targets index the C columns of ``output``; the top-1 prediction of tied
    scores is the lowest class index (``argmax``, as ``eval.confusion_counts``).

    Args:
        num_classes: C.
        topk: The k of ``topk_accuracy``.
        average: The averaging of ``precision_recall_f1``: ``micro`` (pooled counts), ``macro`` (unweighted mean
            over the classes that occur as target or prediction) or ``weighted`` (by target count); 0/0 is 0.
    """

    def __init__(self, num_classes: int, topk: Sequence[int] = (1, 5), average: str = 'macro'):
        from torchmetrics import MetricCollection
        from torchmetrics.classification import (
            MulticlassF1Score, MulticlassPrecision, MulticlassRecall, MulticlassStatScores,
        )
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
        self.num_classes, self.topk, self.average = num_classes, tuple(topk), average
        kwargs = dict(num_classes=num_classes, validate_args=False)
        self._stats = MulticlassStatScores(average='none', **kwargs)  # per class: tp, fp, tn, fn, support
        self._topk = {k: MulticlassStatScores(top_k=min(k, num_classes), average='micro', **kwargs) for k in self.topk}
        self._prf = MetricCollection({name: metric(average=average, zero_division=0, **kwargs) for name, metric in (
            ('precision', MulticlassPrecision), ('recall', MulticlassRecall), ('f1_score', MulticlassF1Score))})
        self.count = 0

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor):
        if output.ndim != 2 or output.shape[1] != self.num_classes:
            raise ValueError(f'output must be [B, {self.num_classes}], got {list(output.shape)}')
        if target.ndim != 1 or target.shape[0] != output.shape[0]:
            raise ValueError(f'target must be [{output.shape[0]}], got {list(target.shape)}')
        target = target.detach().cpu().long()
        if target.numel() and (target.min() < 0 or target.max() >= self.num_classes):
            raise ValueError(
                f'target values must be in [0, {self.num_classes}), got range '
                f'[{int(target.min())}, {int(target.max())}]')
        output = output.detach().float().cpu()
        pred = output.argmax(dim=1)
        self._stats.update(pred, target)
        self._prf.update(pred, target)
        for k, metric in self._topk.items():
            metric.update(output, target)
        self.count += target.numel()

    def _per_class(self, column: int) -> torch.Tensor:
        return self._stats.compute()[:, column].long()

    @property
    def class_correct(self) -> torch.Tensor:
        """[C] correct top-1 predictions per target class."""
        return self._per_class(0)

    @property
    def class_total(self) -> torch.Tensor:
        """[C] images per target class."""
        return self._per_class(4)

    @property
    def class_predicted(self) -> torch.Tensor:
        """[C] top-1 predictions of each class."""
        return self._per_class(0) + self._per_class(1)

    def topk_accuracy(self) -> Dict[int, float]:
        """{k: top-k accuracy in percent} over everything seen."""
        if not self.count:
            raise ValueError('LongTailMeter saw no samples: the evaluation dataset is empty')
        return {k: 100. * int(metric.compute()[0]) / self.count for k, metric in self._topk.items()}  # tp / images

    def precision_recall_f1(self) -> Dict[str, float]:
        """``{'<average>_precision', '<average>_recall', '<average>_f1_score'}`` in percent."""
        return {f'{self.average}_{name}': round(100. * float(value), 4) for name, value in self._prf.compute().items()}


def long_tail_accuracy(
        class_correct: Sequence[int],
        class_total: Sequence[int],
        class_counts: Sequence[int],
        many_thr: int = 100,
        few_thr: int = 20,
) -> Dict[str, Optional[float]]:
    """Top-1 accuracy (percent) over many / medium / few-shot classes.

    Args:
        class_correct: [C] correct top-1 predictions per class on the evaluation set.
        class_total: [C] evaluation images per class.
        class_counts: [C] training images per class.

    Returns:
        ``{'many_acc', 'medium_acc', 'few_acc'}`` (None for a split without evaluation images),
        ``{'many_count', ...}`` (evaluation images) and ``{'many_classes', ...}`` (number of classes).
    """
    num_classes = len(class_total)
    if len(class_correct) != num_classes:
        raise ValueError(f'class_correct has {len(class_correct)} entries, class_total {num_classes}')
    if len(class_counts) != num_classes:
        raise ValueError(
            f'class_counts has {len(class_counts)} classes but the evaluation has {num_classes}: '
            f'training class counts must cover every class of the model')
    splits = class_splits(class_counts, many_thr, few_thr)
    out = {}
    for s in SPLITS:
        idx = [c for c in range(num_classes) if splits[c] == s]
        correct = sum(int(class_correct[c]) for c in idx)
        total = sum(int(class_total[c]) for c in idx)
        out[f'{s}_acc'] = 100. * correct / total if total else None
        out[f'{s}_count'] = total
        out[f'{s}_classes'] = len(idx)
    return out


def per_class_rows(
        class_correct: Sequence[int],
        class_total: Sequence[int],
        class_counts: Optional[Sequence[int]] = None,
        many_thr: int = 100,
        few_thr: int = 20,
) -> List[Dict]:
    """One row per class: class, train_count, val_count, correct, accuracy (percent or None), split."""
    splits = class_splits(class_counts, many_thr, few_thr) if class_counts is not None else None
    rows = []
    for c in range(len(class_total)):
        total, correct = int(class_total[c]), int(class_correct[c])
        rows.append(dict(
            class_index=c,
            train_count=int(class_counts[c]) if class_counts is not None else None,
            val_count=total,
            correct=correct,
            accuracy=100. * correct / total if total else None,
            split=splits[c] if splits is not None else None,
        ))
    return rows
