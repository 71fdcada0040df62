"""Cross-entropy on the common loss call contract (features and queue are ignored), with optional label smoothing
and per-class weights (torch's weighted mean: ``L = Σ_i ℓ_i / Σ_i w_{y_i}``, where with smoothing ``s``
``ℓ_i = (1 − s) · w_{y_i} · (−log p_{i,y_i}) + (s / C) · Σ_c w_c · (−log p_{i,c})``)."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_loss_inputs, check_num_classes, check_real, compute_dtype
from .registry import register_loss

__all__ = ['CELoss']


@register_loss('ce')
class CELoss(nn.Module):
    """``CE(logits [A, C], labels [A])`` with optional label smoothing (torch's convention: ``s / C`` per class)
    and class weights.

    Args:
        num_classes: C.
        label_smoothing: s in [0, 1).
        class_weight: ``[C]`` finite, non-negative weight of each class (None: all 1).
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.0,
                 class_weight: Optional[Union[Sequence[float], torch.Tensor]] = None):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.label_smoothing = check_real('label_smoothing', label_smoothing)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must lie in [0, 1), got {label_smoothing!r}')
        self.register_buffer('class_weight', _check_class_weight(class_weight, self.num_classes), persistent=False)

    def extra_repr(self) -> str:
        weighted = '' if self.class_weight is None else ', class_weight=[...]'
        return f'num_classes={self.num_classes}, label_smoothing={self.label_smoothing}{weighted}'

    def forward(
            self,
            logits: torch.Tensor,
            features: Optional[torch.Tensor],
            labels: torch.Tensor,
            queue_features: Optional[torch.Tensor] = None,
            queue_labels: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        check_loss_inputs(
            self.num_classes, logits, features, labels, queue_features, queue_labels, need_features=False)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = self.adjust_logits(logits.to(compute_dtype(logits)))
            return self.cross_entropy(logits, labels.long())

    def adjust_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Hook applied to the float32 (or float64) logits before the softmax; identity for plain CE."""
        return logits

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Hook: the loss of the checked float32 (or float64) logits ``[A, C]`` and int64 labels ``[A]``."""
        weight = None if self.class_weight is None else self.class_weight.to(logits.dtype)
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing)


def _check_class_weight(class_weight, num_classes: int) -> Optional[torch.Tensor]:
    """``[C]`` float64 class weights, or None; ValueError naming ``class_weight`` otherwise."""
    if class_weight is None:
        return None
    weight = torch.as_tensor(class_weight, dtype=torch.float64).detach().cpu()
    if weight.shape != (num_classes,):
        raise ValueError(f'class_weight: expected one weight per class, shape ({num_classes},), got '
                         f'{tuple(weight.shape)}')
    if not torch.isfinite(weight).all() or (weight < 0).any() or not weight.sum() > 0:
        raise ValueError('class_weight: expected finite, non-negative weights with a positive sum')
    return weight
