"""PaCo (Cui et al., ICCV 2021): query encoder, momentum key encoder and a labelled queue.

Each image comes with two views, ``input [2·B, C, H, W]`` view-major: view 0 is the query, view 1 the key.

* The query model (the timm model plus the task's projector, trained) gives logits ``[B, C]`` and embeddings
  ``q [B, D]``.
* The key encoder is the exponential moving average of the whole query module (model and projector) (timm's ``ModelEmaV3``, decay
  ``momentum``), updated after every optimiser update (``update_ema``), which is what MoCo's update before each
  forward amounts to. It runs without gradient, in the query model's train / eval mode, on the key view:
  ``k [B, D]``.
* The loss anchors are the queries; the keys of the batch and the queue are contrast-only samples. The
  keys are then enqueued (``LabelledQueue`` all-gathers them across ranks).

Under DDP the queries and logits (with gradient), labels and keys of all ranks are gathered, so every rank
computes the loss of the global batch. The key encoder is never DDP-wrapped. The key encoder weights and the
queue are the task state saved in every checkpoint (``get_task_state``).
"""
import logging
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from timm.utils import ModelEmaV3

from timm_paco.losses._checks import check_real
from ._contrastive import ContrastiveTask
from ._distributed import gather_rows, world_size
from ._queued import check_queue_size, load_queue_state, make_queue

__all__ = ['PaCoTask']

_logger = logging.getLogger(__name__)


class PaCoTask(ContrastiveTask):
    """Returns ``{'loss', 'output' (query logits [B, C]), the criterion's named parts}`` (PaCo: ``loss_centre``,
    ``loss_contrast``).

    Args:
        model: A timm classifier (or a ``ContrastiveModule``).
        criterion: A loss with ``loss_parts`` (``timm_paco.losses.PaCoLoss``).
        projector: Projector arguments (``ContrastiveTask``).
        queue_size: Queue slots K (the seeds' ``moco-k``, 8192).
        momentum: Key encoder EMA decay (the seeds' ``moco-m``, 0.999).
        view_forward: Only the query view is encoded with gradient; DSCL's PBSD patches are encoded one group
            of B per forward (``'per-view'``, the authors') or all ``L·B`` at once (``'joint'``).
    """

    task_name = 'paco'

    def __init__(
            self,
            model: nn.Module,
            criterion: nn.Module,
            queue_size: int = 8192,
            momentum: float = 0.999,
            projector: Optional[Dict[str, Any]] = None,
            view_forward: str = 'per-view',
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        super().__init__(model, criterion, num_views=2, projector=projector, view_forward=view_forward, device=device,
                         dtype=dtype,
                         verbose=verbose)
        if not 0.0 <= check_real('momentum', momentum) < 1.0:
            raise ValueError(f'momentum must lie in [0, 1), got {momentum!r}')
        check_queue_size(queue_size)
        self.momentum = float(momentum)
        self.key_encoder = ModelEmaV3(self.module, decay=self.momentum)
        self.key_encoder.requires_grad_(False)
        self.queue = make_queue(queue_size, self.module)
        self.__dict__['_key_forward'] = None  # compiled key forward; kept out of the module tree

    def compile(self, backend: str = 'inductor', mode: Optional[str] = None, **compile_kwargs) -> nn.Module:
        compiled = super().compile(backend=backend, mode=mode, **compile_kwargs)
        self.__dict__['_key_forward'] = torch.compile(
            self.key_encoder.module, backend=backend, mode=mode, **compile_kwargs)
        return compiled

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        key_model = self.key_encoder.module
        key_model.train(self.trainable_module.training)
        forward = self._key_forward if self._key_forward is not None else key_model
        return forward(x)[1]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``input [2·B, C, H, W]`` (query views, then key views), ``target [B]``."""
        batch_size = self.batch_size(input, target)
        logits, queries = self.trainable_module(input[:batch_size])
        keys = self._keys(input[batch_size:])
        return self.contrast(logits, queries, keys, target, *self.queue.get())

    def contrast(self, logits: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor, target: torch.Tensor,
                 queue_features: torch.Tensor, queue_labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The criterion over the gathered batch against ``cat(keys, queue)``, then the keys enqueued: the
        task's result ``{'loss', 'output', 'loss_<part>'}``."""
        labels = gather_rows(target)
        parts = self.criterion.loss_parts(
            gather_rows(logits, grad=True),
            gather_rows(queries, grad=True),
            labels,
            torch.cat([gather_rows(keys).to(queue_features.dtype), queue_features]),
            torch.cat([labels, queue_labels]),
        )
        self.queue.enqueue(keys, target)
        named = {k: v for k, v in parts.items() if k.startswith('loss_')}
        return {'loss': parts['loss'], 'output': logits, **named}

    def prepare_distributed(self, device_ids: Optional[list] = None, **ddp_kwargs) -> 'PaCoTask':
        """DDP-wrap the query model (which broadcasts its weights from rank 0) and broadcast the key encoder
        and queue from rank 0, so every rank starts from the same task state (fresh or resumed)."""
        super().prepare_distributed(device_ids=device_ids, **ddp_kwargs)
        if world_size() > 1:
            for tensor in self.key_encoder.module.state_dict().values():
                dist.broadcast(tensor, src=0)
        self.queue.broadcast(src=0)
        return self

    def update_ema(self, step: Optional[int] = None) -> None:
        """After an optimiser update: the key encoder follows the query model, then the ``--model-ema`` copy."""
        self.key_encoder.update(self.module)
        super().update_ema(step=step)

    def own_state(self) -> Dict[str, Any]:
        return {'key_encoder': self.key_encoder.module.state_dict(), 'queue': self.queue.state_dict()}

    def load_own_state(self, state: Optional[Dict[str, Any]], strict: bool) -> None:
        if not state or 'key_encoder' not in state or 'queue' not in state:
            name = self.task_name
            if strict:
                raise ValueError(
                    f'checkpoint has no {name} task_state (key_encoder, queue): it was not written by a {name} task; '
                    f'use --initial-checkpoint to start {name} from its weights')
            _logger.warning(f'No {name} task state in checkpoint: key encoder set to the query model, queue emptied.')
            self.key_encoder.set(self.module)
            self.queue.reset()
            return
        load_queue_state(self.queue, state['queue'], '--paco-queue-size')
        self.key_encoder.module.load_state_dict(state['key_encoder'], strict=strict)
