"""Cross-entropy baselines (``ce``, ``balanced-softmax``) on V views per image.

Every view of an image is a training sample with the image's label: the loss is the criterion over all
``V·B`` rows (``target`` repeated view-major), so CE with two views does the same backbone work per step
as the two-view contrastive tasks. ``output`` is the logits of view 0. The views pass through the model one
view at a time (``view_forward='per-view'``, BatchNorm statistics per view) or together (``'joint'``).
"""
from typing import Dict

import torch

from ._base import ViewTask

__all__ = ['MultiViewClassificationTask']


class MultiViewClassificationTask(ViewTask):
    """``criterion(logits [V·B, C], None, target.repeat(V))`` for CE / Balanced Softmax."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``input [V·B, C, H, W]``, ``target [B]`` -> ``{'loss', 'output' [B, C]}``."""
        batch_size = self.batch_size(input, target)
        logits = self.encode_views(input, batch_size)
        labels = target.repeat(self.num_views) if self.num_views > 1 else target
        loss = self.criterion(logits, None, labels)
        return {'loss': loss, 'output': logits[:batch_size]}
