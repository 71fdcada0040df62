"""DSCL's decoupled supervised contrastive loss (Xuan & Zhang, AAAI 2024), on the PaCo queue contract.

Anchors are the queries ``features [A, D]``; ``queue_features [N, D]`` is the keys of the batch followed by the
queue, row i the own key of anchor i (as the PaCo task lays them out). With ``s_ij = f_i · k_j / T`` over the
contrast set ``C_i`` = the other queries, the keys and the queue:

    L_i = − α · s_i⁺ − (1 − α) / |P_i| · Σ_{t ∈ P_i} s_it + log Σ_{m ∈ C_i} exp(s_im)

with ``s_i⁺`` the own key and ``P_i`` the other members of ``C_i`` with label ``y_i``; an anchor with no such
member gets InfoNCE on its own key (α = 1 for it). The loss is the mean over anchors. The official code's β
gives ``α = 1 / (1 + β)`` (its recipe's β = 8: α = 1/9, the default). ``α = 1 / (|P_i| + 1)`` for every anchor is
SupCon with the own key as one more positive. ``logits`` are accepted for the common call contract and not
used.
"""
from typing import Dict, Optional

import torch

from ._checks import check_loss_inputs, check_normalised, check_real, check_temperatures, upcast_inputs
from ._contrast import positive_stats, sample_logsumexp
from ._parts import PartsLoss
from .registry import register_loss

__all__ = ['DSCLLoss']


@register_loss('dscl')
class DSCLLoss(PartsLoss):
    """DSCL. Call ``(logits (unused), queries [A, D], labels [A], cat(keys, queue) [A + K, D], labels [A + K])``.

    Args:
        alpha: Weight of the own-view positive, in [0, 1]; the rest ``1 − α`` is spread over the class positives.
        temperature: T of the similarities (0.07, the recipe's).
        num_classes: Optional; labels are checked against it and, on a GPU, it sizes the per-class sums without
            a host synchronisation.
    """

    def __init__(self, alpha: float = 1 / 9, temperature: float = 0.07, num_classes: Optional[int] = None):
        super().__init__()
        alpha = check_real('alpha', alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must lie in [0, 1] (alpha = 1 / (1 + beta) of the official code), got {alpha}')
        self.alpha = alpha
        self.temperature, _ = check_temperatures(temperature, None)
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f'num_classes must be a positive int or None, got {num_classes!r}')
        self.num_classes = num_classes

    def extra_repr(self) -> str:
        return f'alpha={self.alpha:.4g}, temperature={self.temperature}, num_classes={self.num_classes}'

    def _check(self, logits, features, labels, queue_features, queue_labels) -> int:
        rows = check_loss_inputs(self.num_classes, logits, features, labels, queue_features, queue_labels,
                                 need_logits=False)
        if queue_features is None or queue_features.shape[0] < rows:
            raise ValueError(f'queue_features must start with the anchors\' own keys: expected at least A = {rows} '
                             f'rows (keys of the batch, then the queue), got '
                             f'{None if queue_features is None else list(queue_features.shape)}')
        if bool((queue_labels[:rows] != labels).any()):
            raise ValueError('queue_labels[:A] must equal labels: row i of queue_features is anchor i\'s own key')
        check_normalised(features=features, queue_features=queue_features)
        return rows

    def loss_parts(
            self,
            logits: Optional[torch.Tensor],
            features: torch.Tensor,
            labels: torch.Tensor,
            queue_features: Optional[torch.Tensor] = None,
            queue_labels: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """{'loss', 'loss_contrast' (the same: DSCL has no class centres)}."""
        rows = self._check(logits, features, labels, queue_features, queue_labels)
        with torch.autocast(device_type=features.device.type, enabled=False):
            _, features, labels, queue_features, queue_labels = upcast_inputs(
                None, features, labels, queue_features, queue_labels)
            scale = 1.0 / self.temperature
            lse = sample_logsumexp(features, queue_features, self.temperature)
            own = (features * queue_features[:rows]).sum(dim=1) * scale
            if self.num_classes is not None:
                count, dots = positive_stats(features, labels, queue_features, queue_labels, self.num_classes)
            else:  # labels present only: the label range sizes the lookup (one host synchronisation)
                top = int(torch.maximum(labels.max(), queue_labels.max())) + 1
                count, dots = positive_stats(features, labels, queue_features, queue_labels, top, layout='present')
            num_pos = count - 1  # the own key is a same-label member of the contrast set, not a class positive
            has_pos = num_pos > 0
            class_mean = (dots * scale - own) / torch.where(has_pos, num_pos, torch.ones_like(num_pos))
            alpha = torch.where(has_pos, torch.full_like(own, self.alpha), torch.ones_like(own))
            per_anchor = lse - alpha * own - (1 - alpha) * torch.where(has_pos, class_mean, torch.zeros_like(own))
            loss = per_anchor.mean()
        return {'loss': loss, 'loss_contrast': loss}
