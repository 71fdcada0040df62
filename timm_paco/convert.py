""" Convert PaCo / GPaCo seed checkpoints into timm-paco weights.

    python -m timm_paco.convert SRC DST [--model NAME[.TAG]] [--num-classes N]

SRC: a seed checkpoint (``.pth.tar`` with ``state_dict`` = ``module.encoder_q.*`` / ``module.linear.*``
for the ResNets, or the MAE-ViT GPaCo ``checkpoint-*.pth`` with ``model``), or a safetensors file.
Read with ``timm_paco.checkpoint_io`` (safetensors sniffed by content; pickles with ``weights_only=True``).
The architecture (PaCo vs GPaCo from the projector, depth / width / groups from the tensors) and the
class count are read from the weights unless ``--model`` / ``--num-classes`` say otherwise, in which
case they are checked. DST: ``*.safetensors`` writes the plain timm model's weights to one file; any other path
writes a folder with ``model.safetensors``, timm's ``config.json`` (the registered name and its pretrained cfg) and
the training projector in ``projector.safetensors`` (``timm_paco.tasks.attach_projector``). Load the result with::

    timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=DST))  # file
    timm.create_model('local-dir:' + DST, pretrained=True)                           # folder
"""
import argparse
import json
import os
import re
from typing import Any, Dict, Optional, Tuple

import torch
import timm
from timm.models import split_model_name_tag
from timm.models._pretrained import filter_pretrained_cfg

from .arg_types import positive_int
from .checkpoint_io import load_checkpoint_file as load_checkpoint
from .models.pretrained import check_pretrained_tag
from .models.checkpoint_filter import check_state_dict, classifier_module_name, split_state_dict, unwrap_checkpoint
from .models import registered_names
from .models.recipes import PaperRecipe, recipe_for
from .output_target import check_output_file, check_output_folder, clear_folder
from .tasks.projector_file import PROJECTOR_FILE, projector_args, save_projector

__all__ = ['load_checkpoint', 'infer_stock_architecture', 'infer_model_name', 'convert_checkpoint', 'main']

_RESNETS = {  # (blocks per stage, groups, width per group) -> timm name
    ((3, 4, 6, 3), 1, 64): 'resnet50',
    ((3, 4, 23, 3), 1, 64): 'resnet101',
    ((3, 8, 36, 3), 1, 64): 'resnet152',
    ((3, 24, 36, 3), 1, 64): 'resnet200',
    ((3, 4, 6, 3), 32, 4): 'resnext50_32x4d',
    ((3, 4, 23, 3), 32, 4): 'resnext101_32x4d',
}
_VITS = {(16, 768, 12): 'vit_base_patch16_224', (16, 1024, 24): 'vit_large_patch16_224'}
_CIFAR_RESNETS = {(5, 5, 5): 'resnet32_cifar'}


def _blocks_per_stage(sd: Dict[str, torch.Tensor], prefix: str, num_stages: int) -> Tuple[int, ...]:
    counts = []
    for s in range(1, num_stages + 1):
        idx = {int(m.group(1)) for k in sd for m in [re.match(rf'{prefix}layer{s}\.(\d+)\.', k)] if m}
        counts.append(max(idx) + 1 if idx else 0)
    return tuple(counts)


def infer_stock_architecture(sd: Dict[str, torch.Tensor]) -> Tuple[Optional[str], str]:
    """(timm architecture of the plain model keys ``sd``, or None; a description of what the weights show)."""
    if 'patch_embed.proj.weight' in sd:
        w = sd['patch_embed.proj.weight']
        depth = len({k.split('.')[1] for k in sd if k.startswith('blocks.')})
        key = (w.shape[-1], w.shape[0], depth)
        return _VITS.get(key), f'ViT patch {key[0]}, width {key[1]}, depth {key[2]}'
    if 'layer4.0.conv1.weight' in sd:
        width = sd['layer1.0.conv2.weight']
        groups = width.shape[0] // width.shape[1]
        key = (_blocks_per_stage(sd, '', 4), groups, width.shape[0] // groups)
        return _RESNETS.get(key), f'ResNet blocks {key[0]}, groups {key[1]}, width/group {key[2]}'
    if 'layer3.0.conv1.weight' in sd:
        key = _blocks_per_stage(sd, '', 3)
        return _CIFAR_RESNETS.get(key), f'CIFAR ResNet blocks {key}'
    raise ValueError('the model is neither a ResNet (layer*) nor a ViT (patch_embed)')


def _registered_recipes() -> Dict[str, PaperRecipe]:
    """Every registered name with a paper recipe (method, stock architecture, projector layout)."""
    return {n: recipe_for(n) for n in registered_names() if recipe_for(n) is not None}


def infer_model_name(sd: Dict[str, torch.Tensor], projector: Dict[str, torch.Tensor]) -> str:
    """The registered timm-paco name for a remapped checkpoint: the one whose recipe trains the architecture of the
    plain model keys ``sd`` with the projector layout of ``projector`` (PaCo's mlp, GPaCo's mlp3, DSCL's mlp2); with
    no projector, the one registered name of that architecture. ValueError naming the candidates otherwise."""
    stock, desc = infer_stock_architecture(sd)
    proj_type = projector_args(projector)['proj_type'] if projector else None
    recipes = _registered_recipes()
    same_arch = [n for n, r in recipes.items() if stock and r.stock_architecture == stock]
    names = [n for n in same_arch if proj_type is None or recipes[n].proj_type == proj_type]
    if len(names) == 1:
        return names[0]
    if not same_arch:
        raise ValueError(f'no registered timm-paco model for {desc}; registered: {", ".join(registered_names())}. '
                         f'Pass --model to choose one.')
    if not names:
        raise ValueError(f'no registered model trains {desc} with a {proj_type!r} projector; the {stock} ones: '
                         f'{", ".join(same_arch)}. Pass --model to choose one.')
    raise ValueError(f'the checkpoint holds no projector, so the method cannot be read off the weights ({desc}): '
                     f'pass --model, one of {", ".join(names)}')


def _classifier_classes(sd: Dict[str, torch.Tensor]) -> int:
    """The classifier's class count; 0 (a headless encoder) for weights without one, as DSCL's first stage, whose
    contrastive loss trains no classifier."""
    for key in ('fc.weight', 'head.weight'):
        if key in sd:
            return sd[key].shape[0]
    return 0


def convert_checkpoint(
        src: str,
        dst: str,
        model_name: Optional[str] = None,
        num_classes: Optional[int] = None,
        overwrite: bool = False,
        overwrite_flag: str = 'overwrite=True',
        **model_kwargs,
) -> Tuple[str, Dict[str, torch.Tensor]]:
    """Convert ``src`` into timm-paco weights at ``dst``; return (model name, converted state dict).

    ``dst`` (a ``.safetensors`` file, else a folder) must not exist, or be empty, unless ``overwrite`` (named in the
    refusal as ``overwrite_flag``); it never may be ``src``, hold it, or hold a training run
    (``timm_paco.output_target``). A folder's earlier contents go once the weights are converted.

    ``model_kwargs`` go to ``timm.create_model`` (e.g. a reduced ``depth`` for a small ViT).
    Raises ValueError naming the mismatch if the weights do not fit ``model_name`` / ``num_classes``.
    """
    if dst.endswith('.safetensors'):
        check_output_file(dst, [src], overwrite, 'dst', overwrite_flag)
        existing = []
    else:
        existing = check_output_folder(dst, [src], overwrite, 'dst', overwrite_flag)
    tensors = unwrap_checkpoint(load_checkpoint(src), source=src)
    try:
        sd, projector = split_state_dict(tensors)
        name = model_name or infer_model_name(sd, projector)
    except ValueError as e:
        raise ValueError(f'{src}: {e}') from e
    arch, tag = split_model_name_tag(name)
    if arch not in registered_names():
        raise ValueError(f'model_name {name!r} is not a registered timm-paco model; '
                         f'registered: {", ".join(registered_names())}')
    check_pretrained_tag(name)
    if num_classes is None:
        num_classes = timm.models.get_pretrained_cfg(name).num_classes if tag else _classifier_classes(sd)
    recipe = recipe_for(arch)
    found = projector_args(projector, recipe_act=recipe.proj_act) if projector else None
    if found and found['proj_type'] != recipe.proj_type:
        fits = [n for n, r in _registered_recipes().items()
                if r.proj_type == found['proj_type'] and r.stock_architecture == recipe.stock_architecture]
        raise ValueError(f"{src}: its projector is an {found['proj_type']!r} one, {arch} trains an "
                         f"{recipe.proj_type!r} one; pass {' or '.join(fits) or 'another name'} (or no --model, to "
                         f"read it from the weights)")
    model = timm.create_model(arch, pretrained=False, pretrained_cfg=tag or None, num_classes=num_classes,
                              **model_kwargs)
    sd, _ = split_state_dict(tensors, classifier=classifier_module_name(model) or 'fc')
    sd = check_state_dict(sd, model, source=src)
    model.load_state_dict(sd, strict=True)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    clear_folder(dst, existing)
    _save(sd, dst, model, name, model_kwargs)
    if found and not dst.endswith('.safetensors'):
        save_projector(projector, found, os.path.join(dst, PROJECTOR_FILE))
    return name, sd


def _save(
        sd: Dict[str, torch.Tensor],
        dst: str,
        model: torch.nn.Module,
        name: str,
        model_args: Dict[str, Any],
) -> None:
    import safetensors.torch
    arch, tag = split_model_name_tag(name)
    if dst.endswith('.safetensors'):
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        safetensors.torch.save_file(sd, dst, metadata={'architecture': arch, 'format': 'pt'})
        return
    os.makedirs(dst, exist_ok=True)
    safetensors.torch.save_file(sd, os.path.join(dst, 'model.safetensors'), metadata={'format': 'pt'})
    pretrained_cfg = filter_pretrained_cfg(dict(model.pretrained_cfg), remove_source=True, remove_null=True)
    if not tag:  # the default tag's reported numbers do not describe an arbitrary converted checkpoint
        for key in ('tag', 'notes', 'description'):
            pretrained_cfg.pop(key, None)
    config = dict(
        architecture=arch,
        num_classes=model.num_classes,
        num_features=model.num_features,
        pretrained_cfg=pretrained_cfg,
        model_args=dict(model_args),
    )
    with open(os.path.join(dst, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m timm_paco.convert', description='Convert a PaCo / GPaCo seed checkpoint to timm-paco weights.')
    parser.add_argument('src', help='seed checkpoint (.pth.tar / .pth) or safetensors file')
    parser.add_argument('dst', help='output .safetensors file, or a folder (model.safetensors + config.json)')
    parser.add_argument('--model', default=None, help='timm-paco model name[.tag] (default: read from the weights)')
    parser.add_argument('--num-classes', type=positive_int, default=None,
                        help='expected class count (default: from weights)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing dst file, or the contents of a non-empty dst folder (never the '
                             'src file, a folder holding it or a training run)')
    args = parser.parse_args(argv)
    try:
        name, sd = convert_checkpoint(args.src, args.dst, model_name=args.model, num_classes=args.num_classes,
                                      overwrite=args.overwrite, overwrite_flag='--overwrite')
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')
    print(f'{args.src} -> {args.dst}: {name}, {len(sd)} tensors, {sum(v.numel() for v in sd.values())} values')
    if not any(k.startswith(('fc.', 'head.')) for k in sd):
        print(f'{args.src} holds no trained classifier (DSCL\'s first stage trains none): written as a headless '
              f'encoder (num_classes=0); train its classifier with train.py --model {name} --initial-checkpoint '
              f'{args.dst} --classifier-retrain crt --num-classes N')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
