"""LDAM (Cao et al., NeurIPS 2019): label-distribution-aware margins on cosine logits, with deferred re-weighting.

Margins ``m_c ∝ n_c^(−1/4)`` with the largest ``max_margin`` (0.5); the true class's cosine is lowered by its
margin and all are scaled by ``s`` (30): ``L = CE_w(s · (cos − m_y · onehot_y), y)``. ``logits`` must be the
cosines of the features and class weights (``tasks.ldam``). Deferred re-weighting (DRW): from the DRW epoch on
(``set_reweighting(True)``), CE is weighted by the effective-number class weights (β 0.9999), torch's weighted mean.
"""
from typing import Sequence, Union

import torch
import torch.nn.functional as F

from ._checks import check_class_counts, check_real
from .ce import CELoss
from .class_balanced import effective_number_weights
from .registry import register_loss

__all__ = ['LDAMLoss', 'ldam_margins']


def ldam_margins(class_counts: torch.Tensor, max_margin: float) -> torch.Tensor:
    """``[C]`` float64 margins ``n_c^(−1/4)`` scaled to a largest of ``max_margin`` (an empty class: the largest)."""
    counts = class_counts.to(torch.float64)
    raw = torch.where(counts > 0, counts.clamp_min(1).pow(-0.25), torch.zeros_like(counts))
    margins = raw * (max_margin / raw.max())
    return torch.where(counts > 0, margins, torch.full_like(margins, max_margin))


@register_loss('ldam')
class LDAMLoss(CELoss):
    """Call ``(cosine logits [A, C], features (unused), labels [A], ...)`` → scalar.

    Args:
        num_classes: C.
        class_counts: Training images per class ``[C]``.
        max_margin: The largest margin (0.5). scale: s (30). beta: DRW's effective-number β (0.9999).
    """

    def __init__(self, num_classes: int, class_counts: Union[Sequence[float], torch.Tensor], max_margin: float = 0.5,
                 scale: float = 30.0, beta: float = 0.9999):
        super().__init__(num_classes)
        if class_counts is None:
            raise ValueError(f'class_counts is required: a list or tensor of shape [num_classes] = [{num_classes}]')
        counts = check_class_counts(class_counts, self.num_classes)
        self.max_margin, self.scale = check_real('max_margin', max_margin), check_real('scale', scale)
        if self.max_margin < 0 or self.scale <= 0:
            raise ValueError(f'max_margin must be >= 0 and scale > 0, got {max_margin!r}, {scale!r}')
        self.register_buffer('margins', ldam_margins(counts, self.max_margin), persistent=False)
        self.register_buffer('drw_weights', effective_number_weights(counts, check_real('beta', beta)),
                             persistent=False)
        self.reweighting = False

    def set_reweighting(self, on: bool) -> None:
        """DRW: weight the classes from now on (``True``) or not."""
        self.reweighting = bool(on)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, max_margin={self.max_margin}, scale={self.scale}, '
                f'reweighting={self.reweighting}')

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        margin = F.one_hot(labels, self.num_classes).to(logits.dtype) * self.margins.to(logits.dtype)[labels, None]
        weight = self.drw_weights.to(logits.dtype) if self.reweighting else None
        return F.cross_entropy(self.scale * (logits - margin), labels, weight=weight)
