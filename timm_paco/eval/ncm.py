"""Nearest class mean classifier (NCM; Kang et al., ICLR 2020) on a model's own features.

The class means are the averages of the L2-normalised pre-logit features (``forward_head(..., pre_logits=True)``)
of each class's images in a split (the training split); an image is scored by the cosine similarity of its
normalised features to each normalised class mean, ``logit_c = cos(f, μ_c)``, and predicted as the nearest.
"""
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm_paco.models.checkpoint_filter import classifier_module_name

__all__ = ['NearestClassMean', 'class_means', 'attach_ncm']


class NearestClassMean(nn.Module):
    """``pre-logits [N, F] -> cos(normalize(f), normalize(μ_c)) [N, C]``; ``means [C, F]``."""

    def __init__(self, means: torch.Tensor):
        super().__init__()
        self.register_buffer('means', F.normalize(means.float(), dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=1) @ self.means.t()


@torch.no_grad()
def class_means(model: nn.Module, batches: Iterable, num_classes: int) -> torch.Tensor:
    """``[C, F]`` mean of each class's L2-normalised pre-logit features over ``batches`` of ``(images, targets)``
    (already on the model's device); ValueError naming the classes that have no image there."""
    model.eval()
    sums, counts = None, torch.zeros(num_classes, dtype=torch.float64)
    for images, targets in batches:
        feats = F.normalize(model.forward_head(model.forward_features(images), pre_logits=True).double(), dim=1)
        if sums is None:
            sums = torch.zeros(num_classes, feats.shape[1], dtype=torch.float64, device=feats.device)
        sums.index_add_(0, targets.to(feats.device).long(), feats)
        counts += torch.bincount(targets.long().cpu(), minlength=num_classes).double()
    missing = [c for c in range(num_classes) if counts[c] == 0]
    if sums is None or missing:
        raise ValueError(f'--ncm: no images of class{"es" if len(missing) > 1 else ""} '
                         f'{", ".join(map(str, missing[:10]))} in the --ncm-split split to take a class mean from')
    return (sums / counts.to(sums.device)[:, None]).float()


def attach_ncm(model: nn.Module, means: torch.Tensor) -> nn.Module:
    """Replace ``model``'s classifier by ``NearestClassMean(means)`` in place; returns ``model``."""
    name = classifier_module_name(model)
    if not name:
        raise ValueError(f'--ncm: {type(model).__name__} has no classifier module to replace')
    model.set_submodule(name, NearestClassMean(means).to(means.device))
    return model
