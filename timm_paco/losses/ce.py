"""Plain cross-entropy on the common loss call contract (features and queue are ignored)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_loss_inputs, check_num_classes, check_real, compute_dtype
from .registry import register_loss

__all__ = ['CELoss']


@register_loss('ce')
class CELoss(nn.Module):
    """``CE(logits [A, C], labels [A])`` with optional label smoothing (torch's convention: ``s / C`` per class)."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.label_smoothing = check_real('label_smoothing', label_smoothing)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must lie in [0, 1), got {label_smoothing!r}')

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, label_smoothing={self.label_smoothing}'

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
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
