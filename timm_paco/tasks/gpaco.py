"""GPaCo (Cui et al., TPAMI 2023): one shared encoder, every view an anchor, no momentum encoder or queue.

The paper's formulation; the authors' long-tailed code also keeps a queue of earlier key-view embeddings
(8192 slots, 1024 on CIFAR), which this task does not.

For ``input [V·B, C, H, W]`` (V = 2 for the two-view recipe, 1 for the seeds' single-view ViT recipe) the
model returns logits ``[V·B, C]`` and embeddings ``[V·B, D]``; the GPaCo loss (label smoothing on the
centre term) runs over all rows with ``target`` repeated per view. Under DDP the rows of every rank are
gathered (with gradient), so each rank computes the loss of the global batch.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn

from ._base import ViewTask
from ._distributed import gather_rows

__all__ = ['GPaCoTask']


class GPaCoTask(ViewTask):
    """Returns ``{'loss', 'output' (view-0 logits [B, C]), 'loss_centre', 'loss_contrast'}``.

    Args:
        model: A ``PaCoModel`` (``model(x, return_embeddings=True) -> (logits, embeddings)``).
        criterion: A loss with ``loss_parts`` (``timm_paco.losses.GPaCoLoss``).
        num_views: Views per image, all anchors.
    """

    def __init__(
            self,
            model: nn.Module,
            criterion: nn.Module,
            num_views: int = 2,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        super().__init__(model, criterion, num_views=num_views, device=device, dtype=dtype, verbose=verbose)
        self.require_paco_model('gpaco')

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        batch_size = self.batch_size(input, target)
        logits, embeddings = self.trainable_module(input, return_embeddings=True)
        labels = target.repeat(self.num_views) if self.num_views > 1 else target
        parts = self.criterion.loss_parts(
            gather_rows(logits, grad=True),
            gather_rows(embeddings, grad=True),
            gather_rows(labels),
        )
        return {
            'loss': parts['loss'],
            'output': logits[:batch_size],
            'loss_centre': parts['loss_centre'],
            'loss_contrast': parts['loss_contrast'],
        }
