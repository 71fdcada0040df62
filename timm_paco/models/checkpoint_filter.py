""" Convert the PaCo / GPaCo seed checkpoints' state dicts to PaCoModel keys and check them.

Layouts understood (DDP / torch.compile prefixes ``module.`` / ``_orig_mod.`` are stripped first):

* ``timm_paco``: ours, ``backbone.*`` + ``projector.*``; passed through.
* ``moco``: the PaCo / GPaCo ResNet seeds (``MoCo`` wrapper, checkpoint key ``state_dict``):
  ``encoder_q.<resnet>`` -> ``backbone.<resnet>``, ``encoder_q.fc.<i>`` (the projection MLP that
  replaced the ResNet's fc) -> ``projector.<i>``, ``linear.*`` (class centres) ->
  ``backbone.<classifier>.*``; the key encoder (``encoder_k.*``, ``linear_k.*``) and the queue
  (``queue``, ``queue_l``, ``queue_ptr``) are dropped.
* ``mae_vit``: the GPaCo MAE-ViT fine-tuning code (checkpoint key ``model``): a timm ViT with global
  average pooling (``fc_norm``) whose keys map to ``backbone.*`` unchanged, ``mlp.<i>`` ->
  ``projector.<i>``; the queue is dropped.

``checkpoint_filter_fn(state_dict, model)`` is what ``build_model_with_cfg`` calls; it converts and
then checks the result against ``model`` so a wrong architecture or class count is one ValueError
naming the mismatching keys instead of a long strict-load trace. ``check_state_dict`` is that check for
any model (hub export, evaluation, conversion); ``adapt_state_dict`` moves a state dict between the
PaCoModel layout (``backbone.*`` / ``projector.*``) and the plain timm one.
"""
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from timm.models import clean_state_dict

__all__ = [
    'unwrap_checkpoint', 'detect_layout', 'convert_state_dict', 'check_state_dict', 'checkpoint_filter_fn',
    'classifier_name', 'classifier_module_name', 'is_paco_state_dict', 'adapt_state_dict',
]

BACKBONE = 'backbone.'
PROJECTOR = 'projector.'

_QUEUE_KEYS = ('queue', 'queue_l', 'queue_ptr')
_MOCO_DROP_PREFIXES = ('encoder_k.', 'linear_k.')
_LIST_LIMIT = 8


def _fmt(keys, limit: int = _LIST_LIMIT) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return f'{shown}, ... ({len(keys)} in all)' if len(keys) > limit else shown


def unwrap_checkpoint(checkpoint: Any, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Return the tensor state dict inside a checkpoint object (``state_dict`` / ``model`` / bare), DDP and
    torch.compile prefixes (``module.``, ``_orig_mod.``) removed; a ValueError naming ``source`` otherwise."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{source}: expected a dict checkpoint, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            checkpoint = inner
            break
    tensors = {k: v for k, v in checkpoint.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(
            f'{source}: no tensors found; expected a state dict or a dict with a "state_dict" or "model" '
            f'entry, got keys {_fmt(map(str, checkpoint.keys()))}')
    others = [str(k) for k in checkpoint if k not in tensors]
    if others:
        raise ValueError(f'{source}: state dict has entries that are not parameter name -> tensor: {_fmt(others)}')
    return clean_state_dict(tensors)


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``'timm_paco'``, ``'moco'`` or ``'mae_vit'`` for a (``module.``-stripped) state dict."""
    keys = list(state_dict)
    if any(k.startswith('backbone.') for k in keys) and any(k.startswith('projector.') for k in keys):
        return 'timm_paco'
    if any(k.startswith('encoder_q.') for k in keys):
        return 'moco'
    if any(k.startswith('patch_embed.') for k in keys) and any(k.startswith('blocks.') for k in keys):
        return 'mae_vit'
    raise ValueError(
        'unrecognised checkpoint layout: expected backbone.*/projector.* (timm-paco), encoder_q.*/linear.* '
        '(PaCo/GPaCo ResNet seeds) or patch_embed.*/blocks.*/mlp.* (GPaCo MAE-ViT) keys, got '
        f'{_fmt(keys)}')


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], classifier: str = 'fc') -> Dict[str, torch.Tensor]:
    """Map a seed (or our own) state dict to PaCoModel keys.

    Args:
        state_dict: Tensors keyed as in one of the layouts above.
        classifier: Name of the backbone's classifier module (``fc`` for ResNets), the target of the
            seeds' ``linear.*`` class centres.
    """
    sd = clean_state_dict(dict(state_dict))
    layout = detect_layout(sd)
    if layout == 'timm_paco':
        return sd
    out = {}
    for key, value in sd.items():
        if key in _QUEUE_KEYS:
            continue
        if layout == 'moco':
            if key.startswith(_MOCO_DROP_PREFIXES):
                continue
            if key.startswith('encoder_q.fc.'):
                out['projector.' + key[len('encoder_q.fc.'):]] = value
            elif key.startswith('encoder_q.'):
                out['backbone.' + key[len('encoder_q.'):]] = value
            elif key.startswith('linear.'):
                out[f'backbone.{classifier}.' + key[len('linear.'):]] = value
            else:
                raise ValueError(f'PaCo/GPaCo ResNet checkpoint has an unexpected key {key!r}')
        else:
            if key.startswith('mlp.'):
                out['projector.' + key[len('mlp.'):]] = value
            else:
                out['backbone.' + key] = value
    return out


def classifier_module_name(model: nn.Module) -> Optional[str]:
    """Dotted name of ``model``'s classifier module (``fc``, ``head``; ``backbone.fc`` in a PaCoModel), or None
    if ``model`` has no ``get_classifier`` or its classifier is not one of its submodules."""
    target = model.get_classifier() if hasattr(model, 'get_classifier') else None
    return next((n for n, m in model.named_modules() if m is target and n), None) if target is not None else None


def classifier_name(model: nn.Module) -> str:
    """Dotted name of a PaCoModel's classifier module relative to its backbone (``fc``, ``head``)."""
    name = classifier_module_name(model.backbone)
    if name is None:
        raise ValueError(f'cannot find the classifier module of {type(model.backbone).__name__}')
    return name


def is_paco_state_dict(keys: Iterable[str]) -> bool:
    """True if every key is under ``backbone.`` / ``projector.`` (the PaCoModel layout) and there is one."""
    keys = list(keys)
    return bool(keys) and all(k.startswith((BACKBONE, PROJECTOR)) for k in keys)


def adapt_state_dict(state_dict: Mapping[str, Any], model: nn.Module) -> Dict[str, Any]:
    """Re-key ``state_dict`` between the PaCo (``backbone.*`` / ``projector.*``) and plain timm layouts to match
    ``model``'s: into a plain model ``backbone.`` is stripped and ``projector.*`` dropped; into a PaCo model plain
    keys get the ``backbone.`` prefix (the projector is then absent). Unchanged when both layouts agree."""
    model_paco = is_paco_state_dict(model.state_dict().keys())
    ckpt_paco = is_paco_state_dict(state_dict.keys())
    if ckpt_paco and not model_paco:
        return {k[len(BACKBONE):]: v for k, v in state_dict.items() if k.startswith(BACKBONE)}
    if model_paco and not ckpt_paco:
        return {BACKBONE + k: v for k, v in state_dict.items()}
    return dict(state_dict)


def check_state_dict(
        state_dict: Mapping[str, torch.Tensor],
        model: nn.Module,
        allow_classifier_mismatch: bool = False,
        source: str = 'checkpoint',
        model_name: Optional[str] = None,
        optional_prefixes: Tuple[str, ...] = (),
        unchecked_shapes: Tuple[str, ...] = (),
) -> Dict[str, torch.Tensor]:
    """Check ``state_dict`` against ``model`` (any timm model or PaCoModel); return it with absent BN counters
    filled in.

    Raises one ValueError, ``'{source} does not match model {model_name}: ...'``, listing the class-count
    mismatch, missing / unexpected keys and shape mismatches (first few of each).

    Args:
        allow_classifier_mismatch: the classifier may differ or be absent (timm's loader then drops it).
        model_name: named in the error; default the model's pretrained_cfg architecture.
        optional_prefixes: keys under these may be missing (e.g. ``('projector.',)`` for evaluation).
        unchecked_shapes: keys whose shape the loader adapts afterwards (timm's input-channel adaptation of the
            first conv).
    """
    name = model_name or (getattr(model, 'pretrained_cfg', None) or {}).get('architecture') or type(model).__name__
    expected = model.state_dict()
    sd = dict(state_dict)
    for key, value in expected.items():  # counters absent from old checkpoints carry no information
        if key.endswith('num_batches_tracked') and key not in sd:
            sd[key] = torch.zeros_like(value)
    cls_name = classifier_module_name(model)
    cls_prefix = f'{cls_name}.' if cls_name else None
    cls_key = f'{cls_prefix}weight' if cls_prefix and f'{cls_prefix}weight' in expected else None
    skip_cls = allow_classifier_mismatch  # classifier shapes reported (or allowed) as a class-count mismatch
    problems = []
    cls_weight = sd.get(cls_key) if cls_key else None
    if cls_weight is not None and cls_weight.ndim and cls_weight.shape[0] != expected[cls_key].shape[0] \
            and not allow_classifier_mismatch:
        problems.append(
            f'class count mismatch: checkpoint classifier has {cls_weight.shape[0]} classes, model built with '
            f'num_classes={expected[cls_key].shape[0]} ({cls_key}: checkpoint {tuple(cls_weight.shape)} vs model '
            f'{tuple(expected[cls_key].shape)})')
        skip_cls = True

    def _is_cls(k):
        return cls_prefix is not None and k.startswith(cls_prefix)

    missing = [k for k in expected if k not in sd and not k.startswith(optional_prefixes)
               and not (allow_classifier_mismatch and _is_cls(k))]
    unexpected = [k for k in sd if k not in expected and not (allow_classifier_mismatch and _is_cls(k))]
    shapes = [
        f'{k}: {tuple(sd[k].shape)} vs {tuple(v.shape)}' for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape and not (skip_cls and _is_cls(k)) and k not in unchecked_shapes]
    if missing:
        problems.append(f'missing keys: {_fmt(missing)}')
    if unexpected:
        problems.append(f'unexpected keys: {_fmt(unexpected)}')
    if shapes:
        problems.append(f'shape mismatches (checkpoint vs model): {_fmt(shapes)}')
    if problems:
        raise ValueError(f'{source} does not match model {name}: ' + '; '.join(problems))
    return sd


def _channels_adapted(source: torch.Size, target: torch.Size, in_chans: Optional[int]) -> bool:
    """A conv weight ``[out, in, ...]`` timm's loader will adapt: ``in`` differs (the cfg's ``in_chans`` in the
    checkpoint), nothing else does."""
    return (len(source) == len(target) > 1 and source[1] == in_chans != target[1]
            and source[:1] + source[2:] == target[:1] + target[2:])


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: seed or timm-paco checkpoint -> checked PaCoModel state dict."""
    classifier = classifier_name(model)
    sd = convert_state_dict(unwrap_checkpoint(state_dict), classifier=classifier)
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    cfg_classes = cfg.get('num_classes')
    # timm's load_pretrained discards the classifier itself when num_classes differs from the cfg's
    allow = cfg_classes is not None and model.num_classes != cfg_classes
    weight = sd.get(f'{BACKBONE}{classifier}.weight')
    if allow and cfg_classes != -1 and model.num_classes > 0 and weight is not None and weight.ndim \
            and weight.shape[0] == model.num_classes:  # -1: train.py's --pretrained-path, head dropped on purpose
        raise ValueError(
            f'the checkpoint\'s classifier has num_classes={model.num_classes} like the model, but the pretrained '
            f'cfg says {cfg_classes}, so timm would drop the trained class centres: pass '
            f'pretrained_cfg_overlay=dict(file=..., num_classes={model.num_classes}) or the matching tag')
    # timm adapts the first conv to the model's input channels after this filter: its shape is checked there
    first_conv = cfg.get('first_conv') or ()
    in_chans = (cfg.get('input_size') or (None,))[0]
    params = dict(model.named_parameters())
    keys = [f'{name}.weight' for name in ([first_conv] if isinstance(first_conv, str) else first_conv)]
    unchecked = tuple(k for k in keys if k in sd and k in params and _channels_adapted(sd[k].shape, params[k].shape,
                                                                                       in_chans))
    return check_state_dict(sd, model, allow_classifier_mismatch=allow, unchecked_shapes=unchecked)
