"""GPaCo (Cui et al., TPAMI 2023): one shared encoder, every view an anchor, no momentum encoder.

For ``input [V·B, C, H, W]`` (V = 2 for the two-view recipe, 1 for the seeds' single-view ViT recipe) the
model returns logits ``[V·B, C]`` and embeddings ``[V·B, D]``, one forward per view by default (the authors'
code encodes each view in its own call, so BatchNorm normalises each view's batch on its own;
``view_forward='joint'`` encodes all rows at once). The GPaCo loss (label smoothing on the centre term) runs
over all rows with ``target`` repeated per view. Under DDP the rows of every rank are gathered (with
gradient), so each rank computes the loss of the global batch.

The task keeps the last view's embeddings of earlier steps, detached, in a ``queue_size``-slot labelled queue,
as every one of the authors' GPaCo scripts does (8192 slots by default: ImageNet-LT, iNaturalist, Places-LT,
full ImageNet, the MAE ViTs; their CIFAR script 1024): contrast-only samples, enqueued after the loss (all
ranks' rows under DDP) and saved in the task state of every checkpoint. ``queue_size=0`` is the queue-free
formulation of the paper's equations.
"""
import logging
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from ._contrastive import ContrastiveTask
from ._distributed import gather_rows
from ._queued import check_queue_size, load_queue_state, make_queue

__all__ = ['GPACO_QUEUE_SIZE', 'GPaCoTask']

GPACO_QUEUE_SIZE = 8192  # the authors' GPaCo scripts' moco-k (CIFAR: 1024)


_logger = logging.getLogger(__name__)


class GPaCoTask(ContrastiveTask):
    """Returns ``{'loss', 'output' (view-0 logits [B, C]), 'loss_centre', 'loss_contrast'}``.

    Args:
        model: A timm classifier (or a ``ContrastiveModule``).
        criterion: A loss with ``loss_parts`` (``timm_paco.losses.GPaCoLoss``).
        num_views: Views per image, all anchors.
        queue_size: Slots of the queue of earlier embeddings (8192, the authors' scripts); 0 = none.
        view_forward: ``'per-view'`` (default) or ``'joint'`` (``ViewTask``).
        projector: Projector arguments (``ContrastiveTask``).
    """

    def __init__(
            self,
            model: nn.Module,
            criterion: nn.Module,
            num_views: int = 2,
            queue_size: int = GPACO_QUEUE_SIZE,
            projector: Optional[Dict[str, Any]] = None,
            view_forward: str = 'per-view',
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        super().__init__(model, criterion, num_views=num_views, projector=projector, view_forward=view_forward,
                         device=device, dtype=dtype, verbose=verbose)
        self.queue = make_queue(queue_size, self.module) if check_queue_size(queue_size, allow_zero=True) else None

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        batch_size = self.batch_size(input, target)
        logits, embeddings = self.encode_views(input, batch_size)
        labels = target.repeat(self.num_views) if self.num_views > 1 else target
        queued = () if self.queue is None else self.queue.get()
        parts = self.criterion.loss_parts(
            gather_rows(logits, grad=True),
            gather_rows(embeddings, grad=True),
            gather_rows(labels),
            *queued,
        )
        if self.queue is not None:
            self.queue.enqueue(embeddings[-batch_size:], target)
        return {
            'loss': parts['loss'],
            'output': logits[:batch_size],
            'loss_centre': parts['loss_centre'],
            'loss_contrast': parts['loss_contrast'],
        }

    def prepare_distributed(self, device_ids: Optional[list] = None, **ddp_kwargs) -> 'GPaCoTask':
        """DDP-wrap the model; a queue is broadcast from rank 0, so every rank starts from the same one."""
        super().prepare_distributed(device_ids=device_ids, **ddp_kwargs)
        if self.queue is not None:
            self.queue.broadcast(src=0)
        return self

    def own_state(self) -> Dict[str, Any]:
        return {} if self.queue is None else {'queue': self.queue.state_dict()}

    def load_own_state(self, state: Optional[Dict[str, Any]], strict: bool) -> None:
        saved = (state or {}).get('queue')
        if self.queue is None:
            if saved is not None:
                message = (f'checkpoint holds a gpaco queue of {saved["features"].shape[0]} slots, this task has '
                           f'none: pass the same --gpaco-queue-size')
                if strict:
                    raise ValueError(message)
                _logger.warning(message + '; the queue is dropped')
            return
        if saved is None:
            if strict:
                raise ValueError('checkpoint has no gpaco queue: it was trained with --gpaco-queue-size 0 (the '
                                 'default before the queue became the authors\' 8192); resume with '
                                 '--gpaco-queue-size 0, or use --initial-checkpoint to start from its weights')
            _logger.warning('No gpaco queue in checkpoint: queue emptied.')
            self.queue.reset()
            return
        load_queue_state(self.queue, saved, '--gpaco-queue-size')
