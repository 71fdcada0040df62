"""Long-tail classification metrics: overall top-k, many / medium / few-shot and per-class accuracy.

Classes are split by their number of *training* images ``n_c``: many-shot ``n_c > many_thr``, few-shot
``n_c < few_thr``, medium-shot ``few_thr <= n_c <= many_thr`` (defaults 100 and 20, as in Liu et al.'s
OLTR / ImageNet-LT protocol). Split accuracy is the accuracy over all validation images of the classes in
the split, so the overall top-1 is the validation-count-weighted mean of the three split accuracies.
Accuracies are in percent, like timm's ``validate.py``.
"""
from typing import Dict, List, Optional, Sequence

import torch

SPLITS = ('many', 'medium', 'few')


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
    """Accumulates top-1 / top-5 hits overall and per class over batches of logits.

    ``update(output [B, C], target [B])``; targets index the C columns of ``output``.
    """

    def __init__(self, num_classes: int, topk: Sequence[int] = (1, 5)):
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.topk = tuple(topk)
        self.reset()

    def reset(self):
        self.count = 0
        self.hits = {k: 0 for k in self.topk}
        self.class_total = torch.zeros(self.num_classes, dtype=torch.long)
        self.class_correct = torch.zeros(self.num_classes, dtype=torch.long)
        self.class_predicted = torch.zeros(self.num_classes, dtype=torch.long)

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
        output = output.detach().float()
        maxk = min(max(self.topk), self.num_classes)
        pred1 = output.argmax(dim=1).cpu()  # tied scores: the lowest class index (as eval.confusion_counts)
        hit1 = pred1.eq(target)
        match = output.topk(maxk, dim=1).indices.cpu().eq(target[:, None])  # [B, maxk]
        for k in self.topk:  # a top-1 hit is a top-k hit, tied scores too
            self.hits[k] += int((hit1 if k == 1 else hit1 | match[:, :k].any(dim=1)).sum())
        self.count += target.numel()
        self.class_total += torch.bincount(target, minlength=self.num_classes)
        self.class_correct += torch.bincount(target[hit1], minlength=self.num_classes)
        self.class_predicted += torch.bincount(pred1, minlength=self.num_classes)

    def topk_accuracy(self) -> Dict[int, float]:
        """{k: top-k accuracy in percent} over everything seen."""
        if not self.count:
            raise ValueError('LongTailMeter saw no samples: the evaluation dataset is empty')
        return {k: 100. * self.hits[k] / self.count for k in self.topk}


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


def precision_recall_f1(
        class_correct: torch.Tensor,
        class_total: torch.Tensor,
        class_predicted: torch.Tensor,
        average: str = 'macro',
) -> Dict[str, float]:
    """Single-label precision / recall / F1 (percent) from per-class counts [C].

    ``average``: 'micro' (pooled counts), 'macro' (unweighted mean over classes that occur as target or
    prediction) or 'weighted' (mean weighted by target count); a 0/0 ratio counts as 0.
    """
    tp, total, predicted = (t.double() for t in (class_correct, class_total, class_predicted))
    if average == 'micro':
        p = tp.sum() / predicted.sum() if predicted.sum() else tp.new_tensor(0.)
        r = tp.sum() / total.sum() if total.sum() else tp.new_tensor(0.)
        f = 2 * p * r / (p + r) if p + r else tp.new_tensor(0.)
    elif average in ('macro', 'weighted'):
        p = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.)
        r = torch.where(total > 0, tp / total.clamp(min=1), 0.)
        f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=1e-30), 0.)
        if average == 'macro':
            present = (total > 0) | (predicted > 0)
            w = present.double() / present.sum().clamp(min=1)
        else:
            w = total / total.sum().clamp(min=1)
        p, r, f = (w * p).sum(), (w * r).sum(), (w * f).sum()
    else:
        raise ValueError(f"--metrics-avg must be 'micro', 'macro' or 'weighted', got {average!r}")
    return {
        f'{average}_precision': round(100. * float(p), 4),
        f'{average}_recall': round(100. * float(r), 4),
        f'{average}_f1_score': round(100. * float(f), 4),
    }
