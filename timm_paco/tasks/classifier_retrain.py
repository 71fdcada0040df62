"""Decoupled classifier learning (Kang et al., ICLR 2020): a second stage that trains only the classifier.

``train.py --classifier-retrain {crt, lws} --initial-checkpoint STAGE1`` on any timm model:

* everything but the classifier (``model.get_classifier()``) is frozen: no gradient, no weight decay (the
  optimiser sees only trainable parameters), and every other module stays in eval mode whatever ``.train()``
  asks, so BatchNorm normalises with its running statistics and never updates them, and dropout is off;
* ``crt``: the classifier is re-initialised (timm's ``reset_classifier``) and trained;
* ``lws``: the stage-1 classifier is kept and one scale per class is learnt, ``logit_c = s_c · (w_c · f + b_c)``.
  After every update the scales are folded into the model's classifier (``w_c ← s_c w_c⁰``, ``b_c ← s_c b_c⁰``),
  so evaluation, checkpoints and export see a plain timm model giving the trained logits; the scales and the
  stage-1 weights are the task state of a checkpoint (an exact resume).
"""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._wrapped import WrappedModelTask

__all__ = ['RETRAIN_MODES', 'FrozenFeatures', 'ClassifierRetrainTask']

RETRAIN_MODES = ('crt', 'lws')


class FrozenFeatures(nn.Module):
    """A timm classifier ``model`` trained only in its classifier (``mode`` crt) or per-class logit scales (lws):
    ``x [N, C, H, W] -> logits [N, classes]``."""

    def __init__(self, model: nn.Module, mode: str = 'crt'):
        super().__init__()
        if mode not in RETRAIN_MODES:
            raise ValueError(f'mode must be one of {", ".join(RETRAIN_MODES)}, got {mode!r}')
        self.model, self.mode = model, mode
        model.requires_grad_(False)
        if mode == 'crt':
            weight = next(iter(model.get_classifier().parameters()), None)
            model.reset_classifier(model.num_classes)
            if weight is not None:  # reset_classifier builds on the CPU in float32
                model.get_classifier().to(device=weight.device, dtype=weight.dtype)
            model.get_classifier().requires_grad_(True)
        else:
            fc = model.get_classifier()
            if not isinstance(fc, nn.Linear) or fc.bias is None:
                raise ValueError(f'--classifier-retrain lws scales a linear classifier with a bias; '
                                 f'{type(model).__name__}.get_classifier() is {type(fc).__name__}')
            self.register_buffer('weight0', fc.weight.detach().clone())
            self.register_buffer('bias0', fc.bias.detach().clone())
            self.scales = nn.Parameter(torch.ones_like(fc.bias))
        self.train(True)

    def train(self, mode: bool = True) -> 'FrozenFeatures':
        super().train(mode)
        self.model.eval()
        if self.mode == 'crt':
            self.model.get_classifier().train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == 'crt':
            return self.model(x)
        pre = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return F.linear(pre, self.weight0 * self.scales[:, None], self.bias0 * self.scales)

    @torch.no_grad()
    def fold(self) -> None:
        """lws: write the scaled stage-1 classifier into the model's classifier (crt trains it in place)."""
        if self.mode == 'lws':
            fc = self.model.get_classifier()
            fc.weight.copy_(self.weight0 * self.scales[:, None])
            fc.bias.copy_(self.bias0 * self.scales)

    def extra_state(self) -> Dict[str, Any]:
        """lws: the scales and the stage-1 classifier (crt: nothing besides the model)."""
        if self.mode != 'lws':
            return {}
        return {'lws': {'scales': self.scales.detach().clone(), 'weight0': self.weight0.clone(),
                        'bias0': self.bias0.clone()}}

    def load_extra_state(self, state: Dict[str, Any], strict: bool) -> None:
        if self.mode != 'lws':
            return
        if 'lws' not in state:
            if strict:
                raise ValueError('checkpoint has no lws task_state (scales, stage-1 classifier): it was not written '
                                 'by --classifier-retrain lws; use --initial-checkpoint to start lws from its weights')
            return
        for name in ('scales', 'weight0', 'bias0'):
            getattr(self, name).copy_(state['lws'][name])


class ClassifierRetrainTask(WrappedModelTask):
    """The CE-family task (``criterion``: CE, Balanced Softmax, focal, class-balanced) training
    ``FrozenFeatures(model, mode)``; its ``model`` (evaluation, checkpoints, export) is the plain timm model."""

    def __init__(self, model: nn.Module, criterion: nn.Module, mode: str = 'crt', num_views: int = 1,
                 view_forward: str = 'per-view', device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None, verbose: bool = True):
        super().__init__(FrozenFeatures(model, mode), criterion, num_views=num_views, view_forward=view_forward, device=device, dtype=dtype,
                         verbose=verbose)
        self.mode = mode
