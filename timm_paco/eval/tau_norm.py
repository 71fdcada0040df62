"""τ-normalised classifier (Kang et al., ICLR 2020): each class's weight vector divided by its norm to the power τ.

``w_c ← w_c / ‖w_c‖^τ``; the bias is kept, so τ = 0 is the model as trained and τ = 1 scores with unit-norm class
weights. The rows of a long-tailed classifier's head classes have larger norms; τ-norm evens them post hoc.
"""
import torch
import torch.nn as nn

__all__ = ['tau_normalize_classifier']


@torch.no_grad()
def tau_normalize_classifier(model: nn.Module, tau: float) -> nn.Module:
    """Apply τ-norm in place to ``model.get_classifier()`` (a Linear, or a 1×1 convolution); returns ``model``."""
    if tau < 0:
        raise ValueError(f'--tau-norm must be >= 0 (0 = the classifier as trained), got {tau}')
    classifier = model.get_classifier() if callable(getattr(model, 'get_classifier', None)) else None
    weight = getattr(classifier, 'weight', None)
    if not isinstance(classifier, (nn.Linear, nn.Conv2d)) or weight is None or weight.ndim not in (2, 4):
        raise ValueError(f'--tau-norm: {type(model).__name__}.get_classifier() is {type(classifier).__name__}, '
                         f'not a linear classifier whose class weights could be normalised')
    norms = weight.flatten(1).norm(dim=1).clamp_min(1e-12)
    weight.div_(norms.pow(tau).view(-1, *([1] * (weight.ndim - 1))))
    return model
