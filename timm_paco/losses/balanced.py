"""Balanced Softmax / logit-adjusted cross-entropy (Ren et al. 2020; Menon et al. 2021).

``loss = CE(logits + tau · log p, labels)`` with ``p = class_counts / sum`` (zero-sample classes get
``log 1e-9``), optional label smoothing. The long-tail baseline the PaCo papers compare against.
"""
from typing import Sequence, Union

import torch

from ._checks import check_class_counts, check_real, log_prior_from_counts
from .ce import CELoss
from .registry import register_loss

__all__ = ['BalancedSoftmaxLoss']


@register_loss('balanced_softmax')
class BalancedSoftmaxLoss(CELoss):
    """Call ``(logits [A, C], features (unused, may be None), labels [A], queue_features=None, queue_labels=None)``."""

    def __init__(
            self,
            num_classes: int,
            class_counts: Union[Sequence[float], torch.Tensor],
            tau: float = 1.0,
            label_smoothing: float = 0.0,
    ):
        super().__init__(num_classes, label_smoothing=label_smoothing)
        if class_counts is None:
            raise ValueError(f'class_counts is required: a list or tensor of shape [num_classes] = [{num_classes}]')
        self.tau = check_real('tau', tau)
        log_prior = log_prior_from_counts(check_class_counts(class_counts, self.num_classes))
        self.register_buffer('log_prior', log_prior, persistent=False)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, tau={self.tau}'

    def adjust_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.tau * self.log_prior.to(logits.dtype)
