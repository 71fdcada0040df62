"""Balanced Softmax / logit-adjusted cross-entropy (Ren et al. 2020; Menon et al. 2021).

``loss = CE(logits + tau · log p, labels)`` with ``p = class_counts / sum`` (zero-sample classes get
``log 1e-9``), optional label smoothing. The long-tail baseline the PaCo papers compare against.
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_class_counts, check_loss_inputs, check_num_classes, compute_dtype, log_prior_from_counts
from .registry import register_loss

__all__ = ['BalancedSoftmaxLoss']


@register_loss('balanced_softmax')
class BalancedSoftmaxLoss(nn.Module):
    """Call ``(logits [A, C], features (unused, may be None), labels [A], queue_features=None, queue_labels=None)``."""

    def __init__(
            self,
            num_classes: int,
            class_counts: Union[Sequence[float], torch.Tensor],
            tau: float = 1.0,
            label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        if class_counts is None:
            raise ValueError(f'class_counts is required: a list or tensor of shape [num_classes] = [{num_classes}]')
        if not math.isfinite(tau):
            raise ValueError(f'tau must be a finite number, got {tau!r}')
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must lie in [0, 1), got {label_smoothing!r}')
        self.tau = float(tau)
        self.label_smoothing = float(label_smoothing)
        log_prior = log_prior_from_counts(check_class_counts(class_counts, self.num_classes))
        self.register_buffer('log_prior', log_prior, persistent=False)

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, tau={self.tau}, label_smoothing={self.label_smoothing}'

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
        dtype = compute_dtype(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            adjusted = logits.to(dtype) + self.tau * self.log_prior.to(dtype)
            return F.cross_entropy(adjusted, labels.long(), label_smoothing=self.label_smoothing)
