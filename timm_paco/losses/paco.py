"""Parametric contrastive loss (PaCo, ICCV 2021) and its GPaCo defaults (TPAMI 2023).

Per anchor i (a row of ``features [A, D]`` / ``logits [A, C]``), the scores are the centre logits
``z_ic + tau · log p_c`` (``p`` = class prior, only with ``class_counts``; ``tau`` = ``prior_tau``, 1 in the
papers) and the sample similarities ``f_i·k_j / T`` for every ``k_j`` in ``features ∪ queue_features``
except ``j = i``. The softmax denominator holds every centre term plus ``gamma ×`` every sample term.
Positives: the centres with weights ``beta·(1−s)`` on the true class and ``beta·s/(C−1)`` on the others
(``s`` = label smoothing), and every same-label sample ``j ≠ i`` with weight ``alpha``.
``loss_i = −(T / base_T) · Σ_j w_ij log p_ij / Σ_j w_ij``; the loss is the mean over anchors
(anchors whose positive weight is zero, possible only with ``beta = 0``, are left out of the mean).

The three published variants are calls of this one loss:
  * PaCo long-tailed: ``class_counts`` given, ``features`` = query view, queue = key view ∪ MoCo queue.
  * PaCo full ImageNet: the same without ``class_counts``.
  * GPaCo: ``features``/``logits`` = both views (view-major), ``label_smoothing=0.1``, queue = earlier
    last-view embeddings of the same encoder (every one of the authors' GPaCo scripts; none in the paper's
    equations).
"""
from typing import Dict, Optional, Sequence, Union

import torch

from ._checks import (
    check_class_counts, check_loss_inputs, check_num_classes, check_paco_weights, check_real, check_temperatures,
    log_prior_from_counts, upcast_inputs,
)
from ._contrast import positive_stats
from ._paco_terms import paco_log_terms
from ._parts import PartsLoss
from .registry import register_loss

__all__ = ['PaCoLoss', 'GPaCoLoss']


def _masked_mean(values: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    if valid is None:
        return values.mean()
    return torch.where(valid, values, torch.zeros_like(values)).sum() / valid.sum().clamp_min(1)


@register_loss('paco')
class PaCoLoss(PartsLoss):
    """PaCo loss. Call ``(logits [A, C], features [A, D], labels [A], queue_features [N, D], queue_labels [N])``.

    ``features`` must be L2-normalised. Arithmetic runs in float32 (float64 if any input is float64)
    outside autocast. ``class_counts`` [C] (list or tensor) sets the prior ``p = counts / sum``, kept as
    the non-persistent float64 buffer ``log_prior`` = ``prior_tau · log p`` (zero-sample classes get
    ``log 1e-9``).
    Memory: no [A, C+A+N] mask is built; backward reuses the forward's [A, C] and [A, A+N] buffers in
    place, so it runs once per graph.
    """

    def __init__(
            self,
            num_classes: int,
            alpha: float = 0.05,
            beta: float = 1.0,
            gamma: float = 1.0,
            temperature: float = 0.2,
            base_temperature: Optional[float] = None,
            label_smoothing: float = 0.0,
            class_counts: Optional[Union[Sequence[float], torch.Tensor]] = None,
            prior_tau: float = 1.0,
    ):
        super().__init__()
        label_smoothing = check_real('label_smoothing', label_smoothing)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must lie in [0, 1), got {label_smoothing!r}')
        self.num_classes = check_num_classes(num_classes, min_classes=2 if label_smoothing > 0 else 1)
        self.alpha, self.beta, self.gamma = check_paco_weights(alpha, beta, gamma)
        self.temperature, self.base_temperature = check_temperatures(temperature, base_temperature)
        prior_tau = check_real('prior_tau', prior_tau)
        if class_counts is None and prior_tau != 1.0:
            raise ValueError(f'prior_tau={prior_tau} scales the class prior, but no class_counts were given')
        self.label_smoothing = label_smoothing
        self.prior_tau = prior_tau
        log_prior = None
        if class_counts is not None:
            log_prior = self.prior_tau * log_prior_from_counts(check_class_counts(class_counts, self.num_classes))
        self.register_buffer('log_prior', log_prior, persistent=False)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, '
                f'temperature={self.temperature}, base_temperature={self.base_temperature}, '
                f'label_smoothing={self.label_smoothing}, prior={self.log_prior is not None}'
                + (f', prior_tau={self.prior_tau}' if self.log_prior is not None else ''))

    def loss_parts(
            self,
            logits: torch.Tensor,
            features: torch.Tensor,
            labels: torch.Tensor,
            queue_features: Optional[torch.Tensor] = None,
            queue_labels: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """{'loss', 'loss_centre', 'loss_contrast'} scalars; loss == loss_centre + loss_contrast.

        The centre / contrast parts are the shares of the numerator carried by the centre / sample weights.
        """
        check_loss_inputs(self.num_classes, logits, features, labels, queue_features, queue_labels)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return self._parts(*upcast_inputs(logits, features, labels, queue_features, queue_labels))

    def _parts(self, logits, features, labels, queue_features, queue_labels):
        log_prior = None if self.log_prior is None else self.log_prior.to(logits.dtype)
        centre_lp, lse = paco_log_terms(
            logits, features, queue_features, log_prior, labels, self.gamma, self.temperature, self.label_smoothing)
        centre_num = self.beta * centre_lp  # Σ_c w_ic log p_ic; Σ_c w_ic = beta
        total_weight = torch.full_like(lse, self.beta)

        if self.alpha > 0:
            pos_count, pos_dot = positive_stats(features, labels, queue_features, queue_labels, self.num_classes)
            contrast_num = self.alpha * (pos_dot / self.temperature - pos_count * lse)
            total_weight = total_weight + self.alpha * pos_count
        else:
            contrast_num = torch.zeros_like(lse)

        valid = None
        if self.beta == 0:
            valid = total_weight > 0
            total_weight = torch.where(valid, total_weight, torch.ones_like(total_weight))
        scale = -self.temperature / self.base_temperature
        loss_centre = _masked_mean(scale * centre_num / total_weight, valid)
        loss_contrast = _masked_mean(scale * contrast_num / total_weight, valid)
        return {'loss': loss_centre + loss_contrast, 'loss_centre': loss_centre, 'loss_contrast': loss_contrast}


@register_loss('gpaco')
class GPaCoLoss(PaCoLoss):
    """PaCo with the GPaCo recipe's defaults (dvlab-research/Parametric-Contrastive-Learning, GPaCo):
    alpha=0.05, temperature=0.2, label_smoothing=0.1 (their full-ImageNet / ViT value; their long-tailed
    scripts use 0), no class prior; both views are anchors. ``GPaCoTask`` passes a queue of earlier key-view
    embeddings of the same encoder as ``queue_features`` / ``queue_labels`` (8192 slots, as every one of the
    authors' scripts; ``queue_size=0`` passes none, the queue-free equations). (Their ViT fine-tuning scripts use
    alpha=0.2; pass it explicitly.)"""

    def __init__(
            self,
            num_classes: int,
            alpha: float = 0.05,
            beta: float = 1.0,
            gamma: float = 1.0,
            temperature: float = 0.2,
            base_temperature: Optional[float] = None,
            label_smoothing: float = 0.1,
            class_counts: Optional[Union[Sequence[float], torch.Tensor]] = None,
            prior_tau: float = 1.0,
    ):
        super().__init__(
            num_classes, alpha=alpha, beta=beta, gamma=gamma, temperature=temperature,
            base_temperature=base_temperature, label_smoothing=label_smoothing, class_counts=class_counts,
            prior_tau=prior_tau)
