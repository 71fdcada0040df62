"""Supervised contrastive loss (SupCon, Khosla et al. 2020) on the PaCo queue contract.

Anchors are the rows of ``features [A, D]``; the contrast set is ``features ∪ queue_features`` minus
the anchor itself. ``loss_i = −(T / base_T) · mean over same-label j ≠ i of log softmax_j(f_i·k_j / T)``;
the loss is the mean over anchors that have at least one positive (0 when none has).
``logits`` are accepted for the common call contract and not used.
"""
from typing import Dict, Optional

import torch

from ._checks import check_loss_inputs, check_num_classes, check_temperatures, upcast_inputs
from ._contrast import positive_stats, sample_logsumexp
from ._parts import PartsLoss
from .registry import register_loss

__all__ = ['SupConLoss']


@register_loss('supcon')
class SupConLoss(PartsLoss):
    """SupCon. Call ``(logits (unused), features [A, D], labels [A], queue_features [N, D], queue_labels [N])``."""

    def __init__(self, num_classes: int, temperature: float = 0.07, base_temperature: Optional[float] = None):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.temperature, self.base_temperature = check_temperatures(temperature, base_temperature)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, temperature={self.temperature}, '
                f'base_temperature={self.base_temperature}')

    def loss_parts(
            self,
            logits: Optional[torch.Tensor],
            features: torch.Tensor,
            labels: torch.Tensor,
            queue_features: Optional[torch.Tensor] = None,
            queue_labels: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """{'loss', 'loss_centre' (always 0: SupCon has no class centres), 'loss_contrast'}."""
        check_loss_inputs(
            self.num_classes, logits, features, labels, queue_features, queue_labels, need_logits=False)
        with torch.autocast(device_type=features.device.type, enabled=False):
            _, features, labels, queue_features, queue_labels = upcast_inputs(
                None, features, labels, queue_features, queue_labels)  # logits are unused: they set no dtype
            lse = sample_logsumexp(features, queue_features, self.temperature)
            pos_count, pos_dot = positive_stats(features, labels, queue_features, queue_labels, self.num_classes)
            valid = pos_count > 0
            # anchors without positives: no term (and an anchor without any sample has lse = -inf)
            safe_lse = torch.where(valid, lse, torch.zeros_like(lse))
            safe_count = torch.where(valid, pos_count, torch.ones_like(pos_count))
            mean_log_prob = pos_dot / self.temperature / safe_count - safe_lse
            per_anchor = torch.where(valid, mean_log_prob, torch.zeros_like(mean_log_prob))
            loss = -(self.temperature / self.base_temperature) * per_anchor.sum() / valid.sum().clamp_min(1)
        return {'loss': loss, 'loss_centre': torch.zeros_like(loss), 'loss_contrast': loss}
