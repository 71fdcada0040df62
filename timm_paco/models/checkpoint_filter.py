""" One remapping for every checkpoint layout, and the checks that make a bad file one clear error.

A registered model is a plain timm model; training keeps the projector beside it (``timm_paco.tasks``).
Layouts understood (DDP / torch.compile prefixes ``module.`` / ``_orig_mod.`` are stripped first):

* ``timm``: a plain timm state dict (what train.py writes as ``state_dict``, Hub exports); kept.
* ``moco``: the PaCo / GPaCo ResNet seeds (``MoCo`` wrapper, checkpoint key ``state_dict``):
  ``encoder_q.<resnet>`` -> ``<resnet>``, ``encoder_q.fc.<i>`` (the projection MLP that replaced the ResNet's
  fc) -> projector ``<i>``, ``linear.*`` (class centres) -> ``<classifier>.*``; the key encoder
  (``encoder_k.*``, ``linear_k.*``) and the queue (``queue``, ``queue_l``, ``queue_ptr``) are dropped. DSCL's
  first stage (SY-Xuan/DSCL ``main.py``) has the same layout with ``main_label_queue``, dropped too, and no
  ``linear.*``: its contrastive loss trains no classifier.
* ``mae_vit``: the GPaCo MAE-ViT fine-tuning code (checkpoint key ``model``): a timm ViT with global average
  pooling (``fc_norm``) whose keys are kept, ``mlp.<i>`` -> projector ``<i>``; the queue is dropped.

``split_state_dict`` is that remapping; ``checkpoint_filter_fn(state_dict, model)`` is what
``build_model_with_cfg`` calls: it remaps and then checks the result against ``model`` so a wrong architecture
or class count is one ValueError naming the mismatching keys instead of a long strict-load trace.
``check_state_dict`` is that check for any model (hub export, evaluation, conversion).
"""
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from timm.models import clean_state_dict

from timm_paco.finite import check_finite_state

__all__ = [
    'unwrap_checkpoint', 'detect_layout', 'split_state_dict', 'model_state_dict', 'check_state_dict',
    'checkpoint_filter_fn', 'classifier_module_name',
]

_QUEUE_KEYS = ('queue', 'queue_l', 'queue_ptr', 'main_label_queue')  # PaCo / GPaCo; DSCL's label queue
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
    """``'moco'``, ``'mae_vit'`` or ``'timm'`` for a (``module.``-stripped) state dict."""
    keys = list(state_dict)
    if any(k.startswith('encoder_q.') for k in keys):
        return 'moco'
    if any(k.startswith('mlp.') for k in keys) and any(k.startswith('blocks.') for k in keys):
        return 'mae_vit'
    return 'timm'


def _strip(prefix: str, key: str) -> Optional[str]:
    return key[len(prefix):] if key.startswith(prefix) else None


def _moco_key(key: str, classifier: str) -> Tuple[str, str]:
    """(part, key) of a PaCo / GPaCo ResNet seed key: part ``'model'``, ``'projector'`` or ``'drop'``."""
    if key in _QUEUE_KEYS or key.startswith(_MOCO_DROP_PREFIXES):
        return 'drop', key
    for prefix, part, target in (('encoder_q.fc.', 'projector', ''), ('encoder_q.', 'model', ''),
                                 ('linear.', 'model', classifier + '.')):
        rest = _strip(prefix, key)
        if rest is not None:
            return part, target + rest
    raise ValueError(f'PaCo/GPaCo ResNet checkpoint has an unexpected key {key!r}')


def _layout_key(layout: str, key: str, classifier: str) -> Tuple[str, str]:
    """(part, key in that part) of one state-dict key in ``layout``."""
    if layout == 'moco':
        return _moco_key(key, classifier)
    if layout == 'mae_vit':
        if key in _QUEUE_KEYS:
            return 'drop', key
        rest = _strip('mlp.', key)
        return ('projector', rest) if rest is not None else ('model', key)
    return 'model', key


def split_state_dict(
        state_dict: Mapping[str, torch.Tensor],
        classifier: str = 'fc',
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """The one remapping of every checkpoint layout: ``(model state dict, projector state dict)``.

    The model part has the plain timm model's keys (what ``timm.create_model(arch)`` loads), the projector part
    the projector's own keys (``0.weight``, ...; empty when the checkpoint has none). Key encoders and queues are
    dropped. Layouts: see the module docstring.

    Args:
        state_dict: Tensors keyed in any layout above (``module.`` / ``_orig_mod.`` prefixes allowed).
        classifier: Name of the model's classifier module (``fc`` for ResNets), the target of the
            seeds' ``linear.*`` class centres.
    """
    sd = clean_state_dict(dict(state_dict))
    layout = detect_layout(sd)
    parts: Dict[str, Dict[str, torch.Tensor]] = {'model': {}, 'projector': {}, 'drop': {}}
    for key, value in sd.items():
        part, name = _layout_key(layout, key, classifier)
        parts[part][name] = value
    return parts['model'], parts['projector']


def model_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """The part of a checkpoint in any layout that ``model`` (a plain timm model) loads."""
    return split_state_dict(state_dict, classifier=classifier_module_name(model) or 'fc')[0]


def classifier_module_name(model: nn.Module) -> Optional[str]:
    """Dotted name of ``model``'s classifier module (``fc``, ``head``), or None if ``model`` has no
    ``get_classifier`` or its classifier is not one of its submodules."""
    target = model.get_classifier() if hasattr(model, 'get_classifier') else None
    return next((n for n, m in model.named_modules() if m is target and n), None) if target is not None else None


def check_state_dict(
        state_dict: Mapping[str, torch.Tensor],
        model: nn.Module,
        allow_classifier_mismatch: bool = False,
        source: str = 'checkpoint',
        model_name: Optional[str] = None,
        unchecked_shapes: Tuple[str, ...] = (),
) -> Dict[str, torch.Tensor]:
    """Check ``state_dict`` against ``model`` (any timm model); return it with absent BN counters
    filled in.

    Raises one ValueError, ``'{source} does not match model {model_name}: ...'``, listing the class-count
    mismatch, missing / unexpected keys and shape mismatches (first few of each); ``finite.NonFiniteError`` when
    a weight is NaN or infinite (a diverged run).

    Args:
        allow_classifier_mismatch: the classifier may differ or be absent (timm's loader then drops it).
        model_name: named in the error; default the model's pretrained_cfg architecture.
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

    missing = [k for k in expected if k not in sd and not (allow_classifier_mismatch and _is_cls(k))]
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
    check_finite_state(sd, source)
    return sd


def _channels_adapted(source: torch.Size, target: torch.Size, in_chans: Optional[int]) -> bool:
    """A conv weight ``[out, in, ...]`` timm's loader will adapt: ``in`` differs (the cfg's ``in_chans`` in the
    checkpoint), nothing else does."""
    return (len(source) == len(target) > 1 and source[1] == in_chans != target[1]
            and source[:1] + source[2:] == target[:1] + target[2:])


def checkpoint_filter_fn(
        state_dict: Mapping[str, Any],
        model: nn.Module,
        adapt: Optional[Callable[[Dict[str, torch.Tensor], nn.Module], Dict[str, torch.Tensor]]] = None,
) -> Dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: a seed, timm-paco or plain checkpoint -> the checked state dict of ``model``.

    ``adapt`` is the architecture's own timm filter (ViT position-embedding resampling, ...), run on the remapped
    keys before the check."""
    classifier = classifier_module_name(model) or 'fc'
    sd, _ = split_state_dict(unwrap_checkpoint(state_dict), classifier=classifier)
    if adapt is not None:
        sd = adapt(sd, model)
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    cfg_classes = cfg.get('num_classes')
    # timm's load_pretrained discards the classifier itself when num_classes differs from the cfg's
    allow = cfg_classes is not None and model.num_classes != cfg_classes
    weight = sd.get(f'{classifier}.weight')
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
