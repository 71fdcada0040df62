"""LDAM-DRW (Cao et al., NeurIPS 2019) on any timm classifier: cosine logits in training, a plain model after.

The official code trains LDAM through a cosine classifier (``NormedLinear``: normalised features against
normalised class weights, no bias). Here the trainable module keeps the raw class weights as its own parameter
(``CosineClassifier.weight``, trained as the official one is) and the model's classifier is frozen; after every
update it holds the normalised weights and a zero bias (``fold``). The plain model's logits are then
``‖f‖ · cos(f, w_c)``: the same predictions as the cosine classifier (``‖f‖`` is common to all classes), on
another scale (which shows in the loss and the calibration validate.py reports). The raw weights are the
checkpoint's task state (an exact resume). DRW: from ``drw_epoch`` on, the loss weighs the classes by their
effective numbers (``LDAMLoss.set_reweighting``), switched by the epoch the training loop sets.
"""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._wrapped import WrappedModelTask

__all__ = ['CosineClassifier', 'LDAMTask']


class CosineClassifier(nn.Module):
    """``x [N, C, H, W] -> cos(f, w_c) [N, classes]`` (float32) with the model's pre-logits ``f`` and raw class
    weights ``w [classes, F]`` (initialised from the model's classifier)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        fc = model.get_classifier()
        if not isinstance(fc, nn.Linear):
            raise ValueError(f'--task ldam-drw trains a cosine classifier in place of a linear one; '
                             f'{type(model).__name__}.get_classifier() is {type(fc).__name__}')
        self.model = model
        self.weight = nn.Parameter(fc.weight.detach().clone())
        fc.requires_grad_(False)
        self.fold()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return F.normalize(pre.float(), dim=1) @ F.normalize(self.weight.float(), dim=1).t()

    @torch.no_grad()
    def fold(self) -> None:
        """The model's classifier: the normalised class weights, no bias."""
        fc = self.model.get_classifier()
        fc.weight.copy_(F.normalize(self.weight, dim=1))
        if fc.bias is not None:
            fc.bias.zero_()

    def extra_state(self) -> Dict[str, Any]:
        return {'ldam': {'weight': self.weight.detach().clone()}}

    def load_extra_state(self, state: Dict[str, Any], strict: bool) -> None:
        if 'ldam' not in state:
            if strict:
                raise ValueError('checkpoint has no ldam task_state (the raw class weights): it was not written by '
                                 '--task ldam-drw; use --initial-checkpoint to start from its weights')
            return
        self.weight.copy_(state['ldam']['weight'])


class LDAMTask(WrappedModelTask):
    """LDAM with deferred re-weighting from ``drw_epoch``; ``criterion``: ``timm_paco.losses.LDAMLoss``."""

    def __init__(self, model: nn.Module, criterion: nn.Module, drw_epoch: Optional[int] = None, num_views: int = 1,
                 view_forward: str = 'per-view', device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None, verbose: bool = True):
        super().__init__(CosineClassifier(model), criterion, num_views=num_views, view_forward=view_forward, device=device, dtype=dtype,
                         verbose=verbose)
        if drw_epoch is not None and (isinstance(drw_epoch, bool) or not isinstance(drw_epoch, int) or drw_epoch < 0):
            raise ValueError(f'drw_epoch must be an int >= 0, got {drw_epoch!r}')
        self.drw_epoch = drw_epoch

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop before each epoch: DRW on from ``drw_epoch`` (never without one)."""
        self.criterion.set_reweighting(self.drw_epoch is not None and epoch >= self.drw_epoch)
