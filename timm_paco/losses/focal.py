"""Focal loss (Lin et al., ICCV 2017), softmax form, on the common loss call contract.

``L = mean_i − (1 − p_i)^γ · log p_i`` with ``p_i`` the softmax probability of row i's label; γ = 0 is CE.
"""
import torch

from ._checks import check_real
from .ce import CELoss
from .registry import register_loss

__all__ = ['FocalLoss']


@register_loss('focal')
class FocalLoss(CELoss):
    """Call ``(logits [A, C], features (unused, may be None), labels [A], ...)`` → scalar.

    Args:
        num_classes: C.
        gamma: Focusing exponent γ >= 0 (1, the long-tail toolkits' default; 0 = CE).
    """

    def __init__(self, num_classes: int, gamma: float = 1.0):
        super().__init__(num_classes)
        self.gamma = check_real('gamma', gamma)
        if self.gamma < 0:
            raise ValueError(f'gamma must be >= 0 (0 is cross-entropy), got {gamma!r}')

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, gamma={self.gamma}'

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(dim=1).gather(1, labels[:, None])[:, 0]
        return -((1 - log_p.exp()).pow(self.gamma) * log_p).mean()
