"""train.py's model: the plain timm model of ``--model``, its method (``--task``, else the model's paper recipe) and
its placement (device, dtype, memory format, SyncBatchNorm, TorchScript)."""
import re
from typing import Dict, Tuple

import torch
import torch.nn as nn
from timm.layers import convert_sync_batchnorm
from timm.models import create_model

from timm_paco.cli.usage import UsageError
from timm_paco.methods import Method, default_method, get_method
from timm_paco.models import recipe_for
from timm_paco.tasks.initial_weights import read_initial_checkpoint

__all__ = ['create_train_model', 'resolve_method', 'place_model']


# the timm.create_model keyword of each of timm's model flags
MODEL_FLAGS = dict(drop_rate='--drop', drop_path_rate='--drop-path', drop_block_rate='--drop-block', global_pool='--gp',
                   bn_momentum='--bn-momentum', bn_eps='--bn-eps')


def _model_kwargs(args, in_chans: int) -> Dict:
    """``timm.create_model`` keywords of timm's model flags."""
    kwargs = dict(
        pretrained=args.pretrained,
        in_chans=in_chans,
        num_classes=args.num_classes,
        drop_rate=args.drop,
        drop_path_rate=args.drop_path if args.drop_path is not None else args.drop_connect,
        drop_block_rate=args.drop_block,
        global_pool=args.gp,
        bn_momentum=args.bn_momentum,
        bn_eps=args.bn_eps,
        scriptable=args.torchscript,
        **args.model_kwargs,
    )
    if args.pretrained_path:
        kwargs['pretrained_cfg_overlay'] = dict(file=args.pretrained_path, num_classes=-1)
    return kwargs


def _scale_head(model: nn.Module, args) -> None:
    """``--head-init-scale`` / ``--head-init-bias`` on the classifier."""
    if args.head_init_scale is not None:
        with torch.no_grad():
            model.get_classifier().weight.mul_(args.head_init_scale)
            model.get_classifier().bias.mul_(args.head_init_scale)
    if args.head_init_bias is not None:
        nn.init.constant_(model.get_classifier().bias, args.head_init_bias)


def create_train_model(args, in_chans: int) -> Tuple[nn.Module, Dict]:
    """The plain timm model of ``--model`` and the projector weights of ``--initial-checkpoint`` (``{}`` without)."""
    try:
        model = create_model(args.model, **_model_kwargs(args, in_chans))
    except TypeError as e:  # timm 1.0.31: an unknown constructor argument raises TypeError in every model
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if unknown is None:
            raise
        key = unknown.group(1)
        flag = f'--model-kwargs {key}=…' if key in args.model_kwargs else MODEL_FLAGS.get(key, key)
        raise UsageError(f'{flag}: model {args.model} takes no {key!r} argument (timm refuses unknown constructor '
                         f'arguments); drop it') from None
    projector = read_initial_checkpoint(model, args.initial_checkpoint) if args.initial_checkpoint else {}
    _scale_head(model, args)
    return model, projector


def resolve_method(args, model: nn.Module) -> Method:
    """The run's method: ``--task``, else the default (cross-entropy) for ``--classifier-retrain`` or a model
    without a paper recipe, else the recipe's (``paco_resnet50``: paco)."""
    if args.task:
        return get_method(args.task)
    recipe = recipe_for(model.pretrained_cfg.get('architecture'))
    # a second stage trains with the default method unless --task says otherwise, whatever the name's recipe
    return default_method() if args.classifier_retrain or not recipe else get_method(recipe.task)


def place_model(model: nn.Module, args, device: torch.device, dtype) -> nn.Module:
    """``model`` with gradient checkpointing (``--grad-checkpointing``) on ``device`` / ``dtype``, channels_last,
    SyncBatchNorm (``--sync-bn`` under DDP) and scripted (``--torchscript``) as the flags ask."""
    if args.grad_checkpointing:
        model.set_grad_checkpointing(enable=True)
    model.to(device=device, dtype=dtype)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.distributed and args.sync_bn:
        model = convert_sync_batchnorm(model)
    if args.torchscript:
        model = torch.jit.script(model)
    return model
