"""Balanced contrastive learning (BCL; Zhu et al., CVPR 2022): the balanced supervised contrastive loss, and BCL's
total with the logit-adjusted cross-entropy.

Balanced contrastive loss of ``features [N, D]`` (L2-normalised embeddings, labels ``[N]``) and ``centres [C, D]``
(L2-normalised class prototypes, centre c of class c). The contrast set K is every embedding and every centre
("class-complement": each class is in it, present in the batch or not). For an anchor i (an embedding) and
``k_j ∈ K``, ``j ≠ i``: ``s_ij = f_i · k_j / T``. With ``n_c`` the members of class c in K, less one for the
anchor's own class (the anchor is not its own contrast), the denominator is class-averaged ("class-averaging"):

    Z_i = Σ_c (1 / n_c) Σ_{j ∈ c, j ≠ i} exp(s_ij)

The positives P_i are the ``j ≠ i`` of the anchor's class (its other views, same-class samples, its centre):
``loss_i = −(1 / |P_i|) Σ_{j ∈ P_i} (s_ij − log Z_i)``; the loss is the mean over the N anchors.

BCL's total (``BCLLoss``): ``CE(logits + tau · log p_c) + λ · balanced contrastive``, the class prior ``p`` from the
training counts (logit adjustment, tau 1 in the paper), λ 0.35 and T 0.07 the authors' defaults. Arithmetic in
float32 (float64 if an input is) with autocast off.
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn

from ._checks import check_normalised, check_num_classes, check_real, check_temperatures, compute_dtype
from .balanced import BalancedSoftmaxLoss

__all__ = ['BalancedContrastiveLoss', 'BCLLoss']


def _check_inputs(num_classes: int, features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> None:
    for name, x in (('features', features), ('centres', centres)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2:
            raise ValueError(f'{name} must be a 2-d floating-point tensor, got '
                             f'{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}')
    if centres.shape != (num_classes, features.shape[1]):
        raise ValueError(f'centres must have shape [num_classes, D] = [{num_classes}, {features.shape[1]}], got '
                         f'{list(centres.shape)}')
    if not isinstance(labels, torch.Tensor) or labels.shape != (features.shape[0],):
        raise ValueError(f'labels must have shape [N] = [{features.shape[0]}] (one per feature row)')
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f'labels must lie in [0, num_classes) = [0, {num_classes})')
    check_normalised(features=features, centres=centres)


class BalancedContrastiveLoss(nn.Module):
    """``loss(features [N, D], labels [N], centres [C, D])``: the balanced supervised contrastive loss (module
    docstring), a scalar."""

    def __init__(self, num_classes: int, temperature: float = 0.07):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.temperature, _ = check_temperatures(temperature, None)

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, temperature={self.temperature}'

    def forward(self, features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        _check_inputs(self.num_classes, features, labels, centres)
        with torch.autocast(device_type=features.device.type, enabled=False):
            dtype = compute_dtype(features, centres)
            anchors = features.to(dtype)
            contrast = torch.cat([anchors, centres.to(dtype)])  # [N + C, D]
            contrast_labels = torch.cat([labels.long(), torch.arange(self.num_classes, device=labels.device)])
            n = anchors.shape[0]
            is_self = torch.zeros(n, contrast.shape[0], dtype=torch.bool, device=features.device)
            is_self[:, :n] = torch.eye(n, dtype=torch.bool, device=features.device)
            positive = (labels.long()[:, None] == contrast_labels[None, :]) & ~is_self
            members = torch.bincount(contrast_labels, minlength=self.num_classes).to(dtype)  # [C]
            class_size = members[contrast_labels][None, :] - positive.to(dtype)  # n_c seen from each anchor
            logits = anchors @ contrast.t() / self.temperature
            logits = logits - logits.max(dim=1, keepdim=True).values.detach()  # the softmax does not change
            averaged = torch.exp(logits).masked_fill(is_self, 0) / class_size
            log_prob = logits - torch.log(averaged.sum(dim=1, keepdim=True))
            per_anchor = -(log_prob * positive).sum(dim=1) / positive.sum(dim=1)
            return per_anchor.mean()


class BCLLoss(nn.Module):
    """BCL's loss: ``loss(logits [B, C], features [V·B, D], labels [B], centres [C, D])``, the logit-adjusted CE of
    ``logits`` (the classification view) plus ``contrast_weight`` times the balanced contrastive loss of the V
    contrastive views' embeddings (view-major) and the centres. ``loss_parts`` gives ``{'loss', 'loss_ce',
    'loss_contrast'}``.

    Args:
        num_classes: C.
        class_counts: Training samples per class ``[C]``, the prior of the logit adjustment.
        prior_tau: Strength of the prior (``logits + prior_tau · log p``).
        contrast_weight: λ, the weight of the balanced contrastive term (the authors' 0.35).
        temperature: T of the contrastive term (0.07).
        label_smoothing: Of the cross-entropy (0: the authors').
    """

    def __init__(self, num_classes: int, class_counts: Union[Sequence[float], torch.Tensor], prior_tau: float = 1.0,
                 contrast_weight: float = 0.35, temperature: float = 0.07, label_smoothing: float = 0.0):
        super().__init__()
        self.ce = BalancedSoftmaxLoss(num_classes, class_counts, tau=prior_tau, label_smoothing=label_smoothing)
        self.contrast = BalancedContrastiveLoss(num_classes, temperature=temperature)
        self.contrast_weight = check_real('contrast_weight', contrast_weight)
        if self.contrast_weight < 0:
            raise ValueError(f'contrast_weight must be >= 0, got {contrast_weight!r}')

    @property
    def num_classes(self) -> int:
        return self.contrast.num_classes

    def extra_repr(self) -> str:
        return f'contrast_weight={self.contrast_weight}'

    def loss_parts(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                   centres: torch.Tensor) -> Dict[str, torch.Tensor]:
        batch = labels.shape[0] if isinstance(labels, torch.Tensor) and labels.ndim == 1 else -1
        if batch <= 0 or not isinstance(features, torch.Tensor) or features.shape[0] % batch:
            raise ValueError(f'features must hold V x B rows (view-major) for labels [B={batch}], got '
                             f'{list(features.shape) if isinstance(features, torch.Tensor) else features}')
        ce = self.ce(logits, None, labels)
        contrast = self.contrast(features, labels.repeat(features.shape[0] // batch), centres)
        return {'loss': ce + self.contrast_weight * contrast, 'loss_ce': ce, 'loss_contrast': contrast}

    def forward(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                centres: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.loss_parts(logits, features, labels, centres)['loss']
