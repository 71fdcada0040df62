"""Calibration and confusion of one evaluation, streamed batch by batch: expected calibration error (ECE) overall
and on the many / medium / few classes, the reliability diagram's bins, and the confusion matrix.

ECE and the confusion matrix are torchmetrics' (``MulticlassCalibrationError`` with 15 equal-width bins and the
L1 norm: ``Σ_b |B_b| / N · |acc(B_b) − conf(B_b)|`` over the top-1 confidences; ``MulticlassConfusionMatrix``,
rows the true class); torchmetrics syncs them across ranks. The per-bin counts, confidences and accuracies the
reliability diagram draws are kept here (torchmetrics does not return them). A sample's group is its true
class's (``timm_paco.data.metrics.class_splits`` of the training counts).
"""
from typing import Dict, List, Optional, Sequence

import torch
from torchmetrics.classification import MulticlassCalibrationError, MulticlassConfusionMatrix

__all__ = ['CalibrationMeter', 'ECE_BINS']

ECE_BINS = 15
GROUPS = ('many', 'medium', 'few')


class CalibrationMeter:
    """``update(logits [N, C], targets [N])`` per batch, then ``results()`` and ``confusion()``.

    Args:
        num_classes: C.
        splits: Each class's group (``'many'`` / ``'medium'`` / ``'few'``), or None for the overall ECE only.
        n_bins: Equal-width confidence bins (15).
    """

    def __init__(self, num_classes: int, splits: Optional[Sequence[str]] = None, n_bins: int = ECE_BINS):
        self.num_classes, self.n_bins = num_classes, n_bins
        self.groups = {g: [c for c, s in enumerate(splits) if s == g] for g in GROUPS} if splits else {}
        self.ece = {name: MulticlassCalibrationError(num_classes, n_bins=n_bins, norm='l1')
                    for name in ('overall',) + tuple(g for g, members in self.groups.items() if members)}
        self.matrix = MulticlassConfusionMatrix(num_classes)
        self.bin_count = torch.zeros(n_bins, dtype=torch.float64)
        self.bin_confidence = torch.zeros(n_bins, dtype=torch.float64)
        self.bin_correct = torch.zeros(n_bins, dtype=torch.float64)
        self.split_of = torch.full((num_classes,), -1, dtype=torch.long)
        for i, g in enumerate(GROUPS):
            if self.groups.get(g):
                self.split_of[self.groups[g]] = i

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        probs = logits.detach().float().softmax(dim=1).cpu()
        targets = targets.detach().long().cpu()
        self.ece['overall'].update(probs, targets)
        group = self.split_of[targets]
        for i, g in enumerate(GROUPS):
            if g in self.ece and bool((group == i).any()):
                self.ece[g].update(probs[group == i], targets[group == i])
        self.matrix.update(probs, targets)
        confidence, pred = probs.max(dim=1)
        bins = (confidence * self.n_bins).long().clamp_max(self.n_bins - 1)  # [k/n, (k+1)/n); 1.0 in the last
        self.bin_count += torch.bincount(bins, minlength=self.n_bins).double()
        self.bin_confidence += torch.bincount(bins, weights=confidence.double(), minlength=self.n_bins)
        self.bin_correct += torch.bincount(bins, weights=(pred == targets).double(), minlength=self.n_bins)

    def results(self) -> Dict[str, float]:
        """``{'ece', 'many_ece', 'medium_ece', 'few_ece'}`` in % (the groups with classes)."""
        out = {}
        for name, metric in self.ece.items():
            key = 'ece' if name == 'overall' else f'{name}_ece'
            out[key] = round(100 * float(metric.compute()), 4) if metric.update_count else None
        return out

    def reliability_bins(self) -> List[Dict]:
        """Per bin: its range, images, mean confidence and accuracy (None for an empty bin)."""
        rows = []
        for b in range(self.n_bins):
            n = float(self.bin_count[b])
            rows.append(dict(low=b / self.n_bins, high=(b + 1) / self.n_bins, count=int(n),
                             confidence=float(self.bin_confidence[b]) / n if n else None,
                             accuracy=float(self.bin_correct[b]) / n if n else None))
        return rows

    def confusion(self) -> torch.Tensor:
        """``[C, C]`` int64 counts, ``[t, p]``: images of class t predicted p."""
        return self.matrix.compute().long()
