"""The labelled queue a contrastive task keeps in its task state: built from ``queue_size``, checked on resume."""
from typing import Any, Dict

import torch.nn as nn

from timm_paco.queue import LabelledQueue

__all__ = ['check_queue_size', 'make_queue', 'load_queue_state']


def check_queue_size(queue_size: int, allow_zero: bool = False) -> int:
    """``queue_size`` as an int >= 1 (>= 0 with ``allow_zero``: no queue); ValueError naming it otherwise."""
    low = 0 if allow_zero else 1
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < low:
        raise ValueError(f'queue_size must be an int >= {low} (number of queue slots'
                         + ('; 0 = no queue' if allow_zero else '') + f'), got {queue_size!r}')
    return queue_size


def make_queue(queue_size: int, module: nn.Module) -> LabelledQueue:
    """A ``queue_size``-slot queue of ``module.proj_dim``-wide embeddings on the module's device."""
    return LabelledQueue(queue_size, module.proj_dim).to(device=next(module.parameters()).device)


def load_queue_state(queue: LabelledQueue, state: Dict[str, Any], size_flag: str) -> None:
    """Load a checkpoint's queue; ValueError naming ``size_flag`` and ``--paco-proj-dim`` when the shapes differ."""
    if state['features'].shape != queue.features.shape:
        raise ValueError(
            f'checkpoint queue holds {list(state["features"].shape)} (slots x dim), this task '
            f'{list(queue.features.shape)}: use the same {size_flag} and --paco-proj-dim')
    queue.load_state_dict(state)
