"""Base of the tasks that train a plain timm model through a projector (PaCo, GPaCo).

The task owns what only training needs: its trainable module is ``ContrastiveModule(model, projector)``; the model
stays a plain timm model, and it alone is what evaluation, a checkpoint's ``state_dict`` / ``state_dict_ema`` and
export see. The projector's weights go into the checkpoint's ``task_state['projector']`` and its arguments into
``task_state['projector_args']`` (``task_state_ema`` for the ``--model-ema`` copy), beside whatever state the task
keeps (``own_state``: a key encoder, a queue).
"""
import logging
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn
from timm.layers import convert_sync_batchnorm
from timm.utils import unwrap_model

from ._base import ViewTask
from .contrastive_module import ContrastiveModule, create_contrastive_module

__all__ = ['ContrastiveTask']

_logger = logging.getLogger(__name__)


class ContrastiveTask(ViewTask):
    """A ``ViewTask`` whose trainable module is a timm model plus a projector.

    Args:
        model: A timm classifier (the task puts a projector beside it) or a ``ContrastiveModule``.
        criterion: A loss with the ``timm_paco.losses`` call contract.
        num_views: Views per image V in every batch.
        projector: ``create_contrastive_module`` arguments (``proj_dim``, ``proj_type``, ...); None keeps the
            model's paper recipe (or the family default). The projector's BatchNorm is synchronised when the
            model's is (``SyncBatchNorm``).
        view_forward: ``'per-view'`` or ``'joint'`` (``ViewTask``).
        device, dtype, verbose: As ``timm.task.TrainingTask``.
    """

    def __init__(
            self,
            model: nn.Module,
            criterion: nn.Module,
            num_views: int = 1,
            projector: Optional[Mapping[str, Any]] = None,
            view_forward: str = 'per-view',
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        if isinstance(model, ContrastiveModule):
            if projector:
                raise ValueError(f'projector {dict(projector)}: the ContrastiveModule given has its projector already')
            module = model
        else:
            module = create_contrastive_module(model, **(projector or {}))
            if any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()):  # the model's BatchNorm kind (--sync-bn)
                module.projector = convert_sync_batchnorm(module.projector)
        super().__init__(module, criterion, num_views=num_views, view_forward=view_forward, device=device, dtype=dtype,
                         verbose=verbose)

    @property
    def model(self) -> nn.Module:
        return self.module.backbone

    def compile(self, backend: str = 'inductor', mode: Optional[str] = None, **compile_kwargs) -> nn.Module:
        """Compile the trainable module (training) and the plain model (evaluation)."""
        super().compile(backend=backend, mode=mode, **compile_kwargs)
        self.eval_model = torch.compile(self.model, backend=backend, mode=mode, **compile_kwargs)
        return self.eval_model

    def get_eval_model(self, module: Optional[nn.Module] = None, ema: bool = False) -> Optional[nn.Module]:
        """timm's hook: the plain timm model (of the ``--model-ema`` copy with ``ema``), never the projector."""
        if module is None:
            compiled = getattr(self, 'eval_model_ema' if ema else 'eval_model', None)
            if compiled is not None:
                return compiled
            module = self.get_trainable_module(ema=ema)
            if module is None:
                return None
        return unwrap_model(module).backbone

    def get_task_state(self, module: Optional[nn.Module] = None, ema: bool = False) -> Dict[str, Any]:
        """timm's hook: the projector's weights and arguments, and ``own_state()`` for the trained model's entry."""
        source = self.get_trainable_module(ema=ema)
        if source is None:
            return {}
        projector = unwrap_model(source).projector
        state = {'projector': projector.state_dict(), 'projector_args': dict(projector.config)}
        if not ema:
            state.update(self.own_state())
        return state

    def load_projector_state(self, state: Dict[str, torch.Tensor], strict: bool, ema: bool) -> None:
        projector = unwrap_model(self.get_trainable_module(ema=ema)).projector
        if not state:
            if strict:
                raise ValueError('checkpoint holds no projector weights (task_state projector): it was not trained '
                                 'with --task paco|gpaco; use --initial-checkpoint to start from its weights')
            _logger.warning('No projector weights in checkpoint: the projector keeps its initial weights.')
            return
        try:
            projector.load_state_dict(state, strict=strict)
        except RuntimeError as e:
            raise ValueError(f'checkpoint projector does not fit this task\'s (use the same --paco-proj-dim / '
                             f'--paco-proj-type): {str(e).splitlines()[-1].strip()}') from e
