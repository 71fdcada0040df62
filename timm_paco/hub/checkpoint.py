"""Read a trained checkpoint: train.py output, a bare state dict, or a .safetensors file.

Pickles are read with ``weights_only=True`` (``argparse.Namespace`` allow-listed for train.py's ``args``);
``.safetensors`` files are read with safetensors. Nothing else is unpickled.
"""
import argparse
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from timm.models import clean_state_dict

__all__ = ['TrainedCheckpoint', 'read_checkpoint']


@dataclass
class TrainedCheckpoint:
    """Weights plus whatever train.py recorded next to them.

    ``state_dict``: the chosen weights (EMA or not), DDP / compile prefixes removed.
    ``args``: train.py's arguments as a dict ({} for bare state dicts and .safetensors files).
    """
    path: str
    state_dict: Dict[str, torch.Tensor]
    ema: bool = False
    args: Dict[str, Any] = field(default_factory=dict)
    epoch: Optional[int] = None
    metric: Optional[float] = None


def _load_pickle(path: str) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError) as e:
        raise ValueError(
            f"checkpoint '{path}' is not a loadable PyTorch checkpoint with weights_only=True "
            f"(expected a train.py checkpoint, a state dict or a .safetensors file): {e}") from e


def _check_tensors(state_dict: Any, path: str, what: str) -> Dict[str, torch.Tensor]:
    if not isinstance(state_dict, dict) or not state_dict:
        raise ValueError(f"checkpoint '{path}': {what} must be a non-empty dict of tensors, got {type(state_dict).__name__}")
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(
            f"checkpoint '{path}': {what} must map parameter names to tensors; "
            f"{len(bad)} entries are not (first: {bad[:3]!r}). Expected a train.py checkpoint with "
            f"'state_dict', or a bare state dict.")
    return clean_state_dict(state_dict)


def read_checkpoint(path: str, ema: bool = False) -> TrainedCheckpoint:
    """Read weights and training metadata from ``path``.

    Args:
        path: train.py checkpoint (``state_dict``, optional ``state_dict_ema``, ``args``, ``epoch``, ``metric``),
            a pickled bare state dict, or a ``.safetensors`` file.
        ema: take ``state_dict_ema``; a ValueError if the checkpoint has none.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    if path.endswith('.safetensors'):
        if ema:
            raise ValueError(
                f"checkpoint '{path}': ema=True needs a train.py checkpoint with 'state_dict_ema'; "
                f"a .safetensors file holds a single set of weights")
        import safetensors.torch
        try:
            state_dict = safetensors.torch.load_file(path, device='cpu')
        except Exception as e:  # safetensors raises its own SafetensorError for corrupt headers
            raise ValueError(f"checkpoint '{path}' is not a readable .safetensors file: {e}") from e
        return TrainedCheckpoint(path=path, state_dict=_check_tensors(state_dict, path, 'the file'))

    obj = _load_pickle(path)
    if not isinstance(obj, dict):
        raise ValueError(
            f"checkpoint '{path}' holds a {type(obj).__name__}, expected a train.py checkpoint dict "
            f"with 'state_dict' or a bare state dict")
    if 'state_dict' not in obj:
        if ema:
            raise ValueError(f"checkpoint '{path}': ema=True but it is a bare state dict without 'state_dict_ema'")
        return TrainedCheckpoint(path=path, state_dict=_check_tensors(obj, path, 'the state dict'))

    key = 'state_dict'
    if ema:
        if obj.get('state_dict_ema') is None:
            raise ValueError(
                f"checkpoint '{path}': ema=True but it has no 'state_dict_ema' "
                f"(train with --model-ema, or export without --ema); keys: {sorted(obj)}")
        key = 'state_dict_ema'
    args = obj.get('args')
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    metric = obj.get('metric')
    return TrainedCheckpoint(
        path=path,
        state_dict=_check_tensors(obj[key], path, f"'{key}'"),
        ema=ema,
        args=dict(args or {}),
        epoch=obj.get('epoch'),
        metric=float(metric) if metric is not None else None,
    )
