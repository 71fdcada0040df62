"""Shared base of the view tasks: timm's ClassificationTask plus the view-major batch check.

A task receives ``input [V·B, C, H, W]`` (view-major: rows ``v·B .. v·B+B-1`` are view ``v``) and
``target [B]`` (see ``timm_paco.data.stack_views``). The trainable module, DDP wrapping, ``torch.compile`` and
the ``--model-ema`` copy come from ``timm.task.ClassificationTask``.
"""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from timm.task import ClassificationTask
from timm.utils import unwrap_model

__all__ = ['ViewTask']


class ViewTask(ClassificationTask):
    """Base for tasks on ``num_views`` views per image.

    Args:
        model: The model to train (a ``PaCoModel`` for the contrastive tasks).
        criterion: A loss with the ``timm_paco.losses`` call contract.
        num_views: Views per image V in every batch.
        device, dtype, verbose: As ``timm.task.TrainingTask``.
    """

    #: DDP must tolerate parameters without gradient (a PaCoModel's projector under a CE loss)
    find_unused_parameters = False

    def __init__(
            self,
            model: nn.Module,
            criterion: nn.Module,
            num_views: int = 1,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise ValueError(f'num_views must be an int >= 1, got {num_views!r}')
        super().__init__(model, criterion=criterion, device=device, dtype=dtype, verbose=verbose)
        self.num_views = num_views

    @property
    def model(self) -> nn.Module:
        """The unwrapped trainable model (no DDP / compile wrapper)."""
        return unwrap_model(self.trainable_module)

    def require_paco_model(self, task_name: str) -> nn.Module:
        """The unwrapped model, checked to give embeddings (a ``PaCoModel``: backbone + projector, ``proj_dim``)."""
        model = self.model
        if not hasattr(model, 'projector') or not isinstance(getattr(model, 'proj_dim', None), int):
            raise ValueError(
                f'{task_name} needs a PaCoModel (backbone + projector), got {type(model).__name__}; '
                f'wrap it with timm_paco.models.wrap')
        return model

    def batch_size(self, input: torch.Tensor, target: torch.Tensor) -> int:
        """Images B in a view-major batch; ValueError unless ``input`` has ``num_views · B`` rows."""
        if target.ndim != 1:
            raise ValueError(f'target must be class indices of shape [B], got {list(target.shape)}')
        batch_size = target.shape[0]
        if batch_size == 0 or input.shape[0] != self.num_views * batch_size:
            raise ValueError(
                f'input must hold num_views x B = {self.num_views} x {batch_size} rows (view-major) for '
                f'target [B={batch_size}], got {list(input.shape)}')
        return batch_size

    def get_clip_parameters(self, exclude_head: bool = False):
        """Parameters to clip (``--clip-mode agc`` leaves the head out): the head is the classifier (the class
        centres), not the last parameters registered, which in a PaCoModel are the projector's."""
        if not exclude_head:
            return self.get_trainable_module().parameters()
        head = {id(p) for p in self.model.get_classifier().parameters()}
        return [p for p in self.get_trainable_module().parameters() if id(p) not in head]

    def prepare_distributed(self, device_ids: Optional[list] = None, **ddp_kwargs) -> 'ViewTask':
        if self.find_unused_parameters:
            ddp_kwargs.setdefault('find_unused_parameters', True)
        return super().prepare_distributed(device_ids=device_ids, **ddp_kwargs)

    def get_task_state(self, module: Optional[nn.Module] = None, ema: bool = False) -> Dict[str, Any]:
        """timm's hook: ``own_state()`` for the trained model's checkpoint entry, nothing for the EMA copy's."""
        return {} if ema else self.own_state()

    def load_task_state(
            self,
            state: Optional[Dict[str, Any]],
            strict: bool = True,
            module: Optional[nn.Module] = None,
            ema: bool = False,
    ) -> None:
        """timm's hook: ``load_own_state`` with the trained model's entry; the EMA copy's is ignored."""
        if not ema:
            self.load_own_state(state, strict)

    def own_state(self) -> Dict[str, Any]:
        """State the task keeps besides the model (a queue, a key encoder), saved as the checkpoint's
        ``task_state``; none by default."""
        return {}

    def load_own_state(self, state: Optional[Dict[str, Any]], strict: bool) -> None:
        """Restore ``own_state()`` from a checkpoint's ``task_state`` (``None`` when it has none)."""
