"""τ-normalised classifier (Kang et al., ICLR 2020): each class's weight vector divided by its norm to the power τ.

``w_c ← w_c / ‖w_c‖^τ``; the bias is kept, so τ = 0 is the model as trained and τ = 1 scores with unit-norm class
weights. The rows of a long-tailed classifier's head classes have larger norms; τ-norm evens them post hoc.
A sweep over τ runs on kept pre-logit features (``validate.py --features-file``, ``sweep_tau_norm``), the best τ
chosen on a validation split (``logit_adjust.select_tau``).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = ['tau_normalize_classifier', 'tau_norm_logits', 'sweep_tau_norm', 'save_features', 'load_features',
           'ClassifierInputs']


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
    scaled = weight / norms.pow(tau).view(-1, *([1] * (weight.ndim - 1)))
    if not torch.isfinite(scaled).all() or not scaled.flatten(1).norm(dim=1).gt(0).all():
        raise ValueError(f'--tau-norm {tau:g}: the class weight norms ({float(norms.min()):.3g} to '
                         f'{float(norms.max()):.3g}) to the power {tau:g} leave {weight.dtype} range (weights '
                         f'inf, NaN or 0); take a smaller TAU (Kang et al. sweep 0 to 2)')
    with torch.no_grad():
        weight.copy_(scaled)
    return model


def tau_norm_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, tau: float) -> torch.Tensor:
    """``[N, C]`` logits of pre-logit ``features [N, F]`` under the τ-normalised linear classifier ``weight [C, F]``,
    ``bias [C]`` (kept), in float64."""
    w = weight.double()
    return features.double() @ (w / w.norm(dim=1, keepdim=True).clamp_min(1e-12).pow(tau)).t() + bias.double()


def sweep_tau_norm(features: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   taus: Sequence[float]) -> List[float]:
    """Top-1 accuracy (%) of the τ-normalised classifier at each τ, from kept features (``save_features``)."""
    if any(t < 0 for t in taus):
        raise ValueError(f'--tau-norm values must be >= 0, got {list(taus)}')
    targets = targets.long()
    return [100.0 * float((tau_norm_logits(features, weight, bias, t).argmax(1) == targets).double().mean())
            for t in taus]


def save_features(path: str, features: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor) -> None:
    """Write pre-logit ``features [N, F]``, ``targets [N]`` and the linear classifier (``weight [C, F]``, ``bias [C]``)
    to the safetensors file ``path``: what a τ-norm sweep needs without running the model again."""
    from safetensors.torch import save_file
    save_file({'features': features.detach().float().cpu().contiguous(),
               'targets': targets.detach().long().cpu().contiguous(),
               'weight': weight.detach().float().cpu().contiguous(),
               'bias': bias.detach().float().cpu().contiguous()}, path)


def load_features(path: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, targets, weight, bias) from a file written by ``save_features``."""
    from safetensors.torch import load_file
    tensors = load_file(path)
    missing = [k for k in ('features', 'targets', 'weight', 'bias') if k not in tensors]
    if missing:
        raise ValueError(f'{path}: not a features file of validate.py --features-file (no {", ".join(missing)})')
    return tensors['features'], tensors['targets'], tensors['weight'], tensors['bias']


class ClassifierInputs:
    """Keeps what a model's linear classifier receives (its pre-logit features) while evaluating: a forward hook on
    ``model.get_classifier()``; ``remove()`` when done."""

    def __init__(self, model: nn.Module):
        fc = model.get_classifier() if callable(getattr(model, 'get_classifier', None)) else None
        if not isinstance(fc, nn.Linear):
            raise ValueError(f'--features-file: {type(model).__name__}.get_classifier() is {type(fc).__name__}, not '
                             f'a linear classifier (--tau-norm sweeps need one)')
        self.fc, self.batches = fc, []
        self.handle = fc.register_forward_hook(lambda module, inputs, output: self.batches.append(
            inputs[0].detach().float().cpu()))

    def features(self) -> torch.Tensor:
        return torch.cat(self.batches)

    def classifier(self) -> Tuple[torch.Tensor, torch.Tensor]:
        bias = self.fc.bias if self.fc.bias is not None else torch.zeros(self.fc.out_features)
        return self.fc.weight.detach(), bias.detach()

    def remove(self) -> None:
        self.handle.remove()
