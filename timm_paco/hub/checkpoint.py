"""Read a trained checkpoint: train.py output, a bare state dict, or a safetensors file.

Files are read with ``timm_paco.checkpoint_io.load_checkpoint_file`` (safetensors recognised by content;
pickles with ``weights_only=True``); a folder is read through its ``model.safetensors`` / ``pytorch_model.bin``.
"""
import argparse
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch

from ..checkpoint_io import is_safetensors, load_checkpoint_file, resolve_checkpoint_file
from ..models.checkpoint_filter import unwrap_checkpoint
from ..tasks.projector_file import checkpoint_projector

__all__ = ['TrainedCheckpoint', 'read_checkpoint']


@dataclass
class TrainedCheckpoint:
    """Weights plus whatever train.py recorded next to them.

    ``state_dict``: the chosen weights (EMA or not), DDP / compile prefixes removed.
    ``args``: train.py's arguments as a dict ({} for bare state dicts and .safetensors files).
    ``projector``: the training projector's weights (``task_state['projector']``, or those inside a seed
    layout), ``{}`` when the checkpoint has none; ``projector_args`` its recorded ``Projector`` arguments (``{}``
    for the seeds').
    """
    path: str
    state_dict: Dict[str, torch.Tensor]
    ema: bool = False
    args: Dict[str, Any] = field(default_factory=dict)
    epoch: Optional[int] = None
    metric: Optional[float] = None
    projector: Dict[str, torch.Tensor] = field(default_factory=dict)
    projector_args: Dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: str, ema: bool = False) -> TrainedCheckpoint:
    """Read weights and training metadata from ``path``.

    Args:
        path: train.py checkpoint (``state_dict``, optional ``state_dict_ema``, ``args``, ``epoch``, ``metric``),
            a pickled bare state dict, a safetensors file, or a folder with one of these.
        ema: take ``state_dict_ema``; a ValueError if the checkpoint has none.
    """
    path = resolve_checkpoint_file(path)
    if ema and is_safetensors(path):
        raise ValueError(
            f"checkpoint '{path}': ema=True needs a train.py checkpoint with 'state_dict_ema'; "
            f"a safetensors file holds a single set of weights")
    obj = load_checkpoint_file(path)
    if not isinstance(obj, dict):
        raise ValueError(
            f"checkpoint '{path}' holds a {type(obj).__name__}, expected a train.py checkpoint dict "
            f"with 'state_dict' or a bare state dict")
    if ema and 'state_dict' not in obj:
        raise ValueError(f"checkpoint '{path}': ema=True but it is a bare state dict without 'state_dict_ema'")
    if ema and obj.get('state_dict_ema') is None:
        raise ValueError(
            f"checkpoint '{path}': ema=True but it has no 'state_dict_ema' "
            f"(train with --model-ema, or export without --ema); keys: {sorted(obj)}")
    # train.py's 'state_dict' (or 'state_dict_ema'), else the bare state dict itself
    weights = obj['state_dict_ema'] if ema else obj
    state_dict = unwrap_checkpoint(weights, source=f"checkpoint '{path}'" + (" 'state_dict_ema'" if ema else ''))
    projector, projector_args = checkpoint_projector(obj, state_dict, ema=ema)
    if 'state_dict' not in obj:
        return TrainedCheckpoint(path=path, state_dict=state_dict, projector=projector)
    args = obj.get('args')
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    metric = obj.get('metric')
    return TrainedCheckpoint(
        path=path,
        state_dict=state_dict,
        ema=ema,
        args=dict(args or {}),
        epoch=obj.get('epoch'),
        metric=float(metric) if metric is not None else None,
        projector=projector,
        projector_args=projector_args,
    )
