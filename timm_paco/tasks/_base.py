"""Shared base of the view tasks: timm's ClassificationTask plus the view-major batch check and checkpoint loading.

A task receives ``input [V·B, C, H, W]`` (view-major: rows ``v·B .. v·B+B-1`` are view ``v``) and
``target [B]`` (see ``timm_paco.data.stack_views``). The trainable module, DDP wrapping, ``torch.compile`` and
the ``--model-ema`` copy come from ``timm.task.ClassificationTask``. A checkpoint's ``state_dict`` is the plain
timm model's; loading one remaps any layout train.py or the seeds wrote (``timm_paco.models.split_state_dict``).
"""
import logging
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from timm.task import ClassificationTask
from timm.utils import unwrap_model

from timm_paco.models.checkpoint_filter import check_state_dict, split_state_dict, classifier_module_name

__all__ = ['VIEW_FORWARDS', 'ViewTask', 'cat_outputs']

# How the V views of a batch pass through the trained encoder: 'per-view' (one forward per view, so BatchNorm
# normalises each view's batch of B on its own, as the papers' code does) or 'joint' (one forward of all V·B rows,
# BatchNorm statistics over the mixed batch).
VIEW_FORWARDS = ('per-view', 'joint')

_logger = logging.getLogger(__name__)


class ViewTask(ClassificationTask):
    """Base for tasks on ``num_views`` views per image.

    Args:
        model: The module to train: a timm classifier (a ``ContrastiveModule`` in the contrastive tasks).
        criterion: A loss with the ``timm_paco.losses`` call contract.
        num_views: Views per image V in every batch.
        view_forward: ``'per-view'`` (default: one forward of the trained module per view, the papers' BatchNorm
            batches) or ``'joint'`` (one forward of all ``V·B`` rows); the same numbers for models without
            BatchNorm.
        device, dtype, verbose: As ``timm.task.TrainingTask``.
    """

    def __init__(
            self,
            model: nn.Module,
            criterion: nn.Module,
            num_views: int = 1,
            view_forward: str = 'per-view',
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise ValueError(f'num_views must be an int >= 1, got {num_views!r}')
        if view_forward not in VIEW_FORWARDS:
            raise ValueError(f'view_forward must be one of {VIEW_FORWARDS}, got {view_forward!r}')
        super().__init__(model, criterion=criterion, device=device, dtype=dtype, verbose=verbose)
        self.num_views = num_views
        self.view_forward = view_forward

    @property
    def module(self) -> nn.Module:
        """The unwrapped trainable module (no DDP / compile wrapper)."""
        return unwrap_model(self.trainable_module)

    @property
    def model(self) -> nn.Module:
        """The plain timm model being trained: what evaluation, checkpoints' ``state_dict`` and export see."""
        return self.module

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

    def encode_views(self, input: torch.Tensor, batch_size: int):
        """The trainable module over the view-major ``input [V·B, ...]``: its output (a tensor or a tuple of
        tensors, rows view-major) from one call per view of B rows (``per-view``) or one call (``joint``)."""
        if self.view_forward == 'joint' or input.shape[0] <= batch_size:
            return self.trainable_module(input)
        return cat_outputs([self.trainable_module(view) for view in input.split(batch_size)])

    def get_clip_parameters(self, exclude_head: bool = False):
        """Parameters to clip (``--clip-mode agc`` leaves the head out): the head is the classifier (the class
        centres), not the last parameters registered, which in a contrastive module are the projector's."""
        if not exclude_head:
            return self.get_trainable_module().parameters()
        head = {id(p) for p in self.model.get_classifier().parameters()}
        return [p for p in self.get_trainable_module().parameters() if id(p) not in head]

    def get_task_state(self, module: Optional[nn.Module] = None, ema: bool = False) -> Dict[str, Any]:
        """timm's hook: ``own_state()`` for the trained model's checkpoint entry, nothing for the EMA copy's."""
        return {} if ema else self.own_state()

    def load_checkpoint_state(
            self,
            state_dict: Dict[str, Any],
            task_state: Optional[Dict[str, Any]] = None,
            ema: bool = False,
            strict: bool = True,
    ) -> None:
        """timm's hook: load a checkpoint's model entry (any layout, remapped) and its task state."""
        eval_model = self.get_eval_model(ema=ema)
        if eval_model is None:
            raise RuntimeError('Cannot load EMA checkpoint state before setup_ema().' if ema else
                               'Cannot load checkpoint state without an eval model.')
        model = unwrap_model(eval_model)
        model_sd, projector_sd = split_state_dict(state_dict, classifier=classifier_module_name(model) or 'fc')
        if strict:
            model_sd = check_state_dict(model_sd, model, source='checkpoint state_dict')
        model.load_state_dict(model_sd, strict=strict)
        self.load_projector_state((task_state or {}).get('projector', projector_sd), strict=strict, ema=ema)
        self.load_task_state(task_state, strict=strict, ema=ema)

    def load_projector_state(self, state: Dict[str, torch.Tensor], strict: bool, ema: bool) -> None:
        """A checkpoint's projector weights (``{}`` when it has none); a task without a projector ignores them."""

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


def cat_outputs(outputs):
    """Row-wise concatenation of per-chunk outputs: a list of tensors, or of equal-length tuples of tensors."""
    if isinstance(outputs[0], torch.Tensor):
        return torch.cat(outputs)
    return tuple(torch.cat(parts) for parts in zip(*outputs))
