"""Build a model for evaluation and load a plain timm or a PaCo checkpoint into it.

A PaCo checkpoint's state dict has ``backbone.*`` and ``projector.*`` keys (``PaCoModel``). Loaded into a
plain timm model, ``backbone.`` is stripped and ``projector.*`` dropped; loaded into a PaCo model, plain
backbone keys get the ``backbone.`` prefix and the projector (unused for logits) may be absent.
"""
import os
from typing import Any, Dict, List, Optional

import torch.nn as nn
from timm.models import create_model, load_state_dict

BACKBONE = 'backbone.'
PROJECTOR = 'projector.'


def split_checkpoints(checkpoint: str) -> List[str]:
    """``'a.pth.tar,b.pth.tar'`` -> ``['a.pth.tar', 'b.pth.tar']`` ('' -> [])."""
    return [c.strip() for c in checkpoint.split(',') if c.strip()] if checkpoint else []


def _is_paco_keys(keys) -> bool:
    keys = list(keys)
    return (any(k.startswith(PROJECTOR) for k in keys) or any(k.startswith(BACKBONE) for k in keys)) \
        and all(k.startswith((BACKBONE, PROJECTOR)) for k in keys)


def adapt_state_dict(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, Any]:
    """Re-key ``state_dict`` between the PaCo (``backbone.* / projector.*``) and plain timm layouts so it
    matches ``model``'s layout. Unchanged when both already agree."""
    model_paco = _is_paco_keys(model.state_dict().keys())
    ckpt_paco = _is_paco_keys(state_dict.keys())
    if ckpt_paco and not model_paco:
        return {k[len(BACKBONE):]: v for k, v in state_dict.items() if k.startswith(BACKBONE)}
    if model_paco and not ckpt_paco:
        return {BACKBONE + k: v for k, v in state_dict.items()}
    return state_dict


def _checkpoint_num_classes(state_dict: Dict[str, Any], model: nn.Module) -> Optional[int]:
    classifier = getattr(model, 'pretrained_cfg', {}).get('classifier')
    if not classifier:
        return None
    bare = classifier[len(BACKBONE):] if classifier.startswith(BACKBONE) else classifier
    for name in (classifier, bare, BACKBONE + bare):
        w = state_dict.get(f'{name}.weight')
        if w is not None and w.ndim >= 1:
            return int(w.shape[0])
    return None


def load_eval_checkpoint(model: nn.Module, state_dict: Dict[str, Any], path: str, model_name: str):
    """Load an adapted state dict; only ``projector.*`` may be missing. Raises ValueError naming ``path``."""
    state_dict = adapt_state_dict(state_dict, model)
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:
        raise ValueError(f'--checkpoint {path} does not match model {model_name}: {e}') from e
    missing = [k for k in missing if not k.startswith(PROJECTOR)]
    if missing or unexpected:
        raise ValueError(
            f'--checkpoint {path} does not match model {model_name}: '
            f'{len(missing)} missing keys (first: {missing[:3]}), '
            f'{len(unexpected)} unexpected keys (first: {unexpected[:3]})')


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
    try:
        state_dict = load_state_dict(checkpoint, use_ema=use_ema)
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f'--checkpoint {checkpoint} is not a readable checkpoint: {e}') from e
    if num_classes is None:
        ckpt_classes = _checkpoint_num_classes(state_dict, model)
        if ckpt_classes is not None and ckpt_classes != getattr(model, 'num_classes', None):
            model = create_model(model_name, pretrained=False, num_classes=ckpt_classes, **create_kwargs)
    load_eval_checkpoint(model, state_dict, checkpoint, model_name)
    return model
