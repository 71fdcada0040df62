"""Class-balanced cross-entropy (Cui et al., CVPR 2019): CE weighted by the inverse effective number of samples.

``w_c = (1 − β) / (1 − β^{n_c})``, normalised to ``Σ_c w_c = C`` over the classes that have images (a class
without images gets 0); ``L = Σ_i w_{y_i} · CE_i / Σ_i w_{y_i}`` (torch's weighted mean). β = 0 gives plain CE,
β → 1 inverse-frequency weights.
"""
from typing import Sequence, Union

import torch

from ._checks import check_class_counts, check_real
from .ce import CELoss
from .registry import register_loss

__all__ = ['ClassBalancedLoss', 'effective_number_weights']


def effective_number_weights(class_counts: torch.Tensor, beta: float) -> torch.Tensor:
    """``[C]`` float64 weights ``(1 − β) / (1 − β^n)`` scaled to sum to the number of classes with images."""
    counts = class_counts.to(torch.float64)
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = (1 - beta) / (1 - beta ** counts[present]) if beta > 0 else 1.0
    return weights * (int(present.sum()) / weights.sum())


@register_loss('class_balanced')
class ClassBalancedLoss(CELoss):
    """Call ``(logits [A, C], features (unused, may be None), labels [A], ...)`` → scalar.

    Args:
        num_classes: C.
        class_counts: Training images per class ``[C]``.
        beta: Effective-number β in [0, 1) (0.9999, Cui et al.'s).
    """

    def __init__(self, num_classes: int, class_counts: Union[Sequence[float], torch.Tensor], beta: float = 0.9999):
        super().__init__(num_classes)
        self.beta = check_real('beta', beta)
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f'beta must lie in [0, 1), got {beta!r}')
        if class_counts is None:
            raise ValueError(f'class_counts is required: a list or tensor of shape [num_classes] = [{num_classes}]')
        self.class_weight = effective_number_weights(check_class_counts(class_counts, self.num_classes), self.beta)

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, beta={self.beta}'
