"""``train.py --initial-checkpoint``: start a model (and a task's projector) from any checkpoint train.py or the seeds
wrote, read with the project's one safe reader and remapped with its one remapping function."""
from typing import Any, Dict

import torch
import torch.nn as nn

from timm_paco.checkpoint_io import load_checkpoint_file
from timm_paco.models.checkpoint_filter import check_state_dict, model_state_dict, unwrap_checkpoint
from .projector_file import checkpoint_projector

__all__ = ['read_initial_checkpoint', 'load_initial_projector']


def read_initial_checkpoint(model: nn.Module, path: str) -> Dict[str, torch.Tensor]:
    """Load the model weights of the checkpoint at ``path`` into ``model`` (strictly, checked); return the
    checkpoint's projector weights (``{}`` when it has none) for the task to load.

    Raises FileNotFoundError / ValueError naming ``path``."""
    checkpoint = load_checkpoint_file(path, flag='--initial-checkpoint')
    source = f'--initial-checkpoint {path}'
    state_dict = unwrap_checkpoint(checkpoint, source=source)
    projector = checkpoint_projector(checkpoint, state_dict)[0]
    sd = check_state_dict(model_state_dict(state_dict, model), model, source=source)
    model.load_state_dict(sd, strict=True)
    return projector


def load_initial_projector(task: Any, projector: Dict[str, torch.Tensor], path: str) -> bool:
    """Load ``projector`` weights into ``task``'s projector when it has one; True if loaded. A projector of
    another shape is a ValueError naming ``path`` and the flags that set it."""
    if not projector or getattr(getattr(task, 'module', None), 'projector', None) is None:
        return False
    try:
        task.load_projector_state(projector, strict=True, ema=False)
    except ValueError as e:
        raise ValueError(f'--initial-checkpoint {path}: {e}') from e
    return True
