"""Build a model for evaluation and load a checkpoint of any layout into it.

Every registered model is a plain timm model; a checkpoint's model weights are found and remapped by
``timm_paco.models.model_state_dict`` (train.py's plain ``state_dict``, the seeds' layouts) and checked by
``check_state_dict``; projector weights are not needed.
"""
import os
from typing import Any, Dict, List, Optional

import torch.nn as nn
from timm.models import create_model

from ..checkpoint_io import load_checkpoint_file
from ..models.checkpoint_filter import check_state_dict, classifier_module_name, model_state_dict, unwrap_checkpoint


def split_checkpoints(checkpoint: str) -> List[str]:
    """``'a.pth.tar,b.pth.tar'`` -> ``['a.pth.tar', 'b.pth.tar']`` ('' -> [])."""
    return [c.strip() for c in checkpoint.split(',') if c.strip()] if checkpoint else []


def _checkpoint_num_classes(state_dict: Dict[str, Any], model: nn.Module) -> Optional[int]:
    """Classes of the checkpoint's classifier (read in ``model``'s layout), None if it has none."""
    name = classifier_module_name(model)
    w = model_state_dict(state_dict, model).get(f'{name}.weight') if name else None
    return int(w.shape[0]) if w is not None and w.ndim >= 1 else None


def read_eval_state_dict(path: str, use_ema: bool = False) -> Dict[str, Any]:
    """The model weights of the checkpoint at ``path``, read with the project's one safe reader: train.py's
    ``state_dict`` (``state_dict_ema`` with ``use_ema`` when present, as timm's loader), a bare state dict or
    a safetensors file. Raises ValueError / FileNotFoundError naming ``--checkpoint``."""
    checkpoint = load_checkpoint_file(path, flag='--checkpoint')
    if use_ema and isinstance(checkpoint, dict) and isinstance(checkpoint.get('state_dict_ema'), dict):
        checkpoint = checkpoint['state_dict_ema']
    return unwrap_checkpoint(checkpoint, source=f'--checkpoint {path}')


def load_eval_checkpoint(model: nn.Module, state_dict: Dict[str, Any], path: str, model_name: str):
    """Load a checkpoint's model weights (any layout) strictly. Raises ValueError naming ``path``."""
    state_dict = check_state_dict(
        model_state_dict(state_dict, model), model, source=f'--checkpoint {path}', model_name=model_name)
    model.load_state_dict(state_dict, strict=True)


def create_eval_model(
        model_name: str,
        checkpoint: str = '',
        use_ema: bool = False,
        num_classes: Optional[int] = None,
        pretrained: bool = False,
        **create_kwargs,
) -> nn.Module:
    """``timm.create_model(model_name, ...)`` with ``checkpoint``'s weights (plain timm or PaCo layout).

    With ``num_classes=None`` the classifier size is taken from the checkpoint when it differs from the
    model's default. ``use_ema`` takes ``state_dict_ema`` when the checkpoint has one (as timm's loader).
    """
    model = create_model(model_name, pretrained=pretrained, num_classes=num_classes, **create_kwargs)
    if not checkpoint:
        return model
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'--checkpoint {checkpoint} does not exist')
    state_dict = read_eval_state_dict(checkpoint, use_ema)
    if num_classes is None:
        ckpt_classes = _checkpoint_num_classes(state_dict, model)
        if ckpt_classes is not None and ckpt_classes != getattr(model, 'num_classes', None):
            model = create_model(model_name, pretrained=False, num_classes=ckpt_classes, **create_kwargs)
    load_eval_checkpoint(model, state_dict, checkpoint, model_name)
    return model
