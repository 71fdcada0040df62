"""Base of the CE-family tasks that train a wrapper around a plain timm model (``module.model``): the wrapper
changes how the logits are trained (a frozen feature extractor, learnt class scales, cosine logits) and after
every update writes what it learnt into the model's own classifier (``module.fold()``), so evaluation,
checkpoints and export see the plain timm model. What the wrapper keeps besides (``module.extra_state()``) is
the checkpoint's task state."""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from timm.utils import unwrap_model

from .classification import MultiViewClassificationTask

__all__ = ['WrappedModelTask']


class WrappedModelTask(MultiViewClassificationTask):
    """``criterion(wrapper(input), target)``; the wrapper has ``model``, ``fold()``, ``extra_state()`` and
    ``load_extra_state(state, strict)``."""

    @property
    def model(self) -> nn.Module:
        return self.module.model

    def get_eval_model(self, module: Optional[nn.Module] = None, ema: bool = False) -> Optional[nn.Module]:
        """timm's hook: the plain timm model (of the ``--model-ema`` copy with ``ema``)."""
        if module is None:
            module = self.get_trainable_module(ema=ema)
            if module is None:
                return None
        return unwrap_model(module).model

    def update_ema(self, step: Optional[int] = None) -> None:
        """After an optimiser update: the wrapper folds into the model's classifier, then the ``--model-ema``
        copy follows."""
        self.module.fold()
        super().update_ema(step=step)

    def own_state(self) -> Dict[str, Any]:
        return self.module.extra_state()

    def load_own_state(self, state: Optional[Dict[str, Any]], strict: bool) -> None:
        with torch.no_grad():
            self.module.load_extra_state(state or {}, strict)
