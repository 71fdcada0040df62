"""Cross-entropy baselines (``ce``, ``balanced-softmax``) on V views per image.

Every view of an image is a training sample with the image's label: the loss is the criterion over all
``V·B`` rows (``target`` repeated view-major), so CE with two views does the same backbone work per step
as the two-view contrastive tasks. ``output`` is the logits of view 0.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn

from ._base import ViewTask

__all__ = ['MultiViewClassificationTask']


class MultiViewClassificationTask(ViewTask):
    """``criterion(logits [V·B, C], None, target.repeat(V))`` for CE / Balanced Softmax."""

    def __init__(
            self,
            model: nn.Module,
            criterion: nn.Module,
            num_views: int = 1,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        super().__init__(model, criterion, num_views=num_views, device=device, dtype=dtype, verbose=verbose)
        # a PaCoModel's projector takes no part in a CE loss
        self.find_unused_parameters = hasattr(self.model, 'projector')

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``input [V·B, C, H, W]``, ``target [B]`` -> ``{'loss', 'output' [B, C]}``."""
        batch_size = self.batch_size(input, target)
        logits = self.trainable_module(input)
        labels = target.repeat(self.num_views) if self.num_views > 1 else target
        loss = self.criterion(logits, None, labels)
        return {'loss': loss, 'output': logits[:batch_size]}
