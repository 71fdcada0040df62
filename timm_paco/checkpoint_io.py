"""Read checkpoint files safely: safetensors when the content is one, else ``torch.load(weights_only=True)``.

Accepted: a ``.safetensors`` file (recognised by its header, whatever its extension), a pickle written by
``torch.save`` (train.py checkpoints, seed checkpoints, bare state dicts), or a folder holding
``model.safetensors`` (preferred) or ``pytorch_model.bin``. Pickles may hold only tensors, containers and
the allow-listed types of ``checkpoint_safe_globals()``; anything else is refused, never executed.
"""
import argparse
import os
from typing import Any, List, Optional

import torch

__all__ = ['checkpoint_safe_globals', 'is_safetensors', 'resolve_checkpoint_file', 'load_checkpoint_file']

_SAFETENSORS_HEADER_LEN_BYTES = 8
_FOLDER_FILES = ('model.safetensors', 'pytorch_model.bin')


def checkpoint_safe_globals() -> List[type]:
    """Non-tensor types checkpoints hold besides tensors: train.py's ``args``, numpy scalars (metrics)."""
    import numpy as np
    types = [argparse.Namespace, np.dtype]
    for mod_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            types.append(__import__(mod_name, fromlist=['scalar']).scalar)
            break
        except (ImportError, AttributeError):
            continue
    types += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32')]
    return types


def is_safetensors(path: str) -> bool:
    """True if the file at ``path`` starts like a safetensors file (little-endian header length, then ``{``)."""
    with open(path, 'rb') as f:
        head = f.read(_SAFETENSORS_HEADER_LEN_BYTES + 1)
    if len(head) < _SAFETENSORS_HEADER_LEN_BYTES + 1:
        return False
    header_len = int.from_bytes(head[:_SAFETENSORS_HEADER_LEN_BYTES], 'little')
    return head[_SAFETENSORS_HEADER_LEN_BYTES:] == b'{' and 0 < header_len < os.path.getsize(path)


def resolve_checkpoint_file(path: str) -> str:
    """The file to read for ``path``: itself, or a folder's ``model.safetensors`` / ``pytorch_model.bin``.

    Raises FileNotFoundError naming ``path`` when there is no such file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in _FOLDER_FILES:
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(f"checkpoint folder '{path}' has no {' or '.join(_FOLDER_FILES)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    return path


def _unpickle_reason(error: Exception) -> str:
    """The specific part of torch's weights-only error (which global / opcode was refused)."""
    msg = str(error)
    if 'WeightsUnpickler error:' in msg:
        msg = msg.split('WeightsUnpickler error:', 1)[1].strip().split('\n\n')[0]
        return msg.split(' Please use')[0].strip()
    paras = [p.strip() for p in msg.split('\n\n') if p.strip()]
    useful = [p for p in paras if not p.startswith(('Weights only load failed', 'Check the documentation'))]
    return (useful or paras or ['unreadable'])[0].splitlines()[0]


def load_checkpoint_file(path: str, flag: Optional[str] = None) -> Any:
    """Read the checkpoint object at ``path`` (file or folder, see module docstring) onto the CPU.

    Returns a dict of tensors for safetensors, else whatever the pickle holds (not checked further).
    Raises FileNotFoundError if nothing is there, ValueError naming the file (and ``flag``, the option that gave
    it, e.g. ``'--resume'``) if it cannot be read safely.
    """
    if flag is None:
        return _load_checkpoint_file(path)
    try:
        return _load_checkpoint_file(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{flag}: {e}') from None
    except ValueError as e:
        raise ValueError(f'{flag}: {e}') from None


def _load_checkpoint_file(path: str) -> Any:
    path = resolve_checkpoint_file(path)
    if is_safetensors(path):
        import safetensors.torch
        try:
            return safetensors.torch.load_file(path, device='cpu')
        except Exception as e:  # a corrupt header raises safetensors' own SafetensorError
            raise ValueError(f"checkpoint '{path}' is not a readable safetensors file: {e}") from e
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # UnpicklingError, EOFError, zip errors, ... all mean "not a checkpoint"
        raise ValueError(
            f"checkpoint '{path}' is not a loadable PyTorch checkpoint with weights_only=True nor a safetensors "
            f"file (expected a train.py / seed checkpoint or a state dict): "
            f"{type(e).__name__}: {_unpickle_reason(e)}") from e
