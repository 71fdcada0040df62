"""The numeric precision of a run from ``--model-dtype``, ``--amp`` and ``--amp-dtype`` (train.py and validate.py)."""
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Callable, ContextManager, Optional

import torch
from timm import utils

from timm_paco.cli.usage import UsageError

__all__ = ['Precision', 'resolve_precision']

_MODEL_DTYPES = ('float32', 'float16', 'bfloat16')
_AMP_DTYPES = ('float16', 'bfloat16')


@dataclass(frozen=True)
class Precision:
    """``model_dtype``: the parameters' dtype (None: as built, float32); ``amp_dtype``: the autocast dtype (None:
    no autocast)."""
    model_dtype: Optional[torch.dtype] = None
    amp_dtype: Optional[torch.dtype] = None

    def autocast(self, device: torch.device) -> Callable[[], ContextManager]:
        """A factory of the forward's autocast context on ``device`` (a no-op without ``--amp``)."""
        if self.amp_dtype is None:
            return suppress
        return partial(torch.autocast, device_type=device.type, dtype=self.amp_dtype)

    def loss_scaler(self, device: torch.device) -> Optional[utils.NativeScaler]:
        """timm's gradient scaler for float16 autocast on CUDA; None otherwise (bfloat16 and the CPU need none)."""
        if self.amp_dtype == torch.float16 and device.type == 'cuda':
            return utils.NativeScaler(device=device.type)
        return None


def resolve_precision(model_dtype: Optional[str], amp: bool, amp_dtype: str) -> Precision:
    """The ``Precision`` of the flags; raises UsageError on an unknown dtype or ``--amp`` with a low-precision
    model."""
    dtype = None
    if model_dtype:
        if model_dtype not in _MODEL_DTYPES:
            raise UsageError(f'--model-dtype: expected float32, float16 or bfloat16, got {model_dtype}')
        dtype = getattr(torch, model_dtype)
    if not amp:
        return Precision(dtype)
    if dtype not in (None, torch.float32):
        raise UsageError('--amp needs a float32 model (--model-dtype float32 or unset)')
    if amp_dtype not in _AMP_DTYPES:
        raise UsageError(f'--amp-dtype: expected float16 or bfloat16, got {amp_dtype}')
    return Precision(dtype, getattr(torch, amp_dtype))
