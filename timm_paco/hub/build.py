"""Rebuild the trained model from a checkpoint and load its weights, with one clear error on any mismatch."""
from typing import Any, Dict, Optional

import torch
import timm
from timm.models import resolve_model_input_args
from torch import nn

from ..models.pretrained import check_pretrained_tag
from ..models.checkpoint_filter import check_state_dict, classifier_module_name, model_state_dict
from .checkpoint import TrainedCheckpoint

__all__ = ['model_name_from_checkpoint', 'build_trained_model', 'stem_weight_key']


def model_name_from_checkpoint(ckpt: TrainedCheckpoint, model_name: Optional[str] = None) -> str:
    name = model_name or ckpt.args.get('model')
    if not name:
        raise ValueError(
            f"model_name: checkpoint '{ckpt.path}' records no args.model; pass the architecture (--model)")
    if not timm.is_model(name):
        raise ValueError(
            f"model_name: '{name}' is not a registered timm model (import timm_paco registers the PaCo variants)")
    check_pretrained_tag(name)
    return name


def stem_weight_key(model: nn.Module) -> Optional[str]:
    """State-dict key of the stem convolution's weight (the pretrained cfg's ``first_conv``), None if unknown."""
    first_conv = model.pretrained_cfg.get('first_conv')
    first_conv = first_conv[0] if isinstance(first_conv, (list, tuple)) else first_conv
    return f'{first_conv}.weight' if first_conv else None


def _infer_int(state_dict: Dict[str, torch.Tensor], key: Optional[str], dim: int) -> Optional[int]:
    if key and key in state_dict and state_dict[key].ndim > dim:
        return int(state_dict[key].shape[dim])
    return None


def build_trained_model(
        ckpt: TrainedCheckpoint,
        model_name: Optional[str] = None,
        num_classes: Optional[int] = None,
        in_chans: Optional[int] = None,
        **model_kwargs: Any,
) -> nn.Module:
    """Create ``model_name`` (default: the checkpoint's args.model) and load the checkpoint's model weights (any
    layout, ``timm_paco.models.model_state_dict``) strictly.

    Class count and input channels: given > checkpoint args > read off the classifier / stem weights.
    Returns the plain timm model in eval mode.
    """
    name = model_name_from_checkpoint(ckpt, model_name)
    args = dict(ckpt.args)
    kwargs = dict(args.get('model_kwargs') or {})
    kwargs.update(model_kwargs)
    if args.get('gp'):
        kwargs.setdefault('global_pool', args['gp'])
    num_classes = num_classes or args.get('num_classes')
    in_chans = in_chans or args.get('in_chans') or (args.get('input_size') or [None])[0]
    # built as train.py built it: the image size only from --model-kwargs (a dynamic-size ViT trained at another
    # --img-size keeps its default position embeddings), so the input size flags take no part here
    sizeless = {k: v for k, v in args.items() if k not in ('img_size', 'input_size')}

    def _create(nc, ic):
        create_args = resolve_model_input_args(name, sizeless, num_classes=nc, in_chans=ic, **kwargs)
        return timm.create_model(pretrained=False, **create_args)

    model = _create(num_classes, in_chans)
    state_dict = model_state_dict(ckpt.state_dict, model)
    if num_classes is None or in_chans is None:
        # bare state dicts and .safetensors carry no args: read class count / channels off the weights
        cls_name = classifier_module_name(model)
        keys = dict(nc=(f'{cls_name}.weight' if cls_name else None, 0), ic=(stem_weight_key(model), 1))
        built = {k: _infer_int(model.state_dict(), key, dim) for k, (key, dim) in keys.items()}
        found = {k: _infer_int(state_dict, key, dim) for k, (key, dim) in keys.items()}
        nc = num_classes or found['nc'] or built['nc']
        ic = in_chans or found['ic'] or built['ic']
        if (nc, ic) != (built['nc'], built['ic']):
            model = _create(nc, ic)
    state_dict = check_state_dict(state_dict, model, source=f"checkpoint '{ckpt.path}'", model_name=name)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
