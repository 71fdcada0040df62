"""Export a trained checkpoint to a Hugging Face Hub folder: config.json, model.safetensors, README.md.

Two forms:
  * ``'paco'``: the whole PaCoModel (``backbone.*`` + ``projector.*``) under its registered PaCo architecture
    name; ``timm.create_model('hf-hub:…' / 'local-dir:…', pretrained=True)`` loads it after ``import timm_paco``.
  * ``'timm'``: the inference model as the plain timm architecture of the backbone (e.g. ``resnet50``); the
    projection head is training-only and dropped (the queue lives in task state, never in model weights).
    Plain timm loads it with no plugin installed, unless the backbone is an architecture timm_paco registers
    (``resnet32_cifar``): then loading needs ``import timm_paco`` (see ``needs_timm_paco``).
"""
import os
from typing import Any, Dict, Optional

import timm
import torch
from timm.models import get_model_args, model_entrypoint, save_for_hf
from torch import nn

from ..models.checkpoint_filter import check_state_dict
from .build import build_trained_model, is_paco_model, stem_weight_key
from .checkpoint import TrainedCheckpoint, read_checkpoint
from .model_card import model_card, read_results

__all__ = ['EXPORT_FORMS', 'export_checkpoint', 'export_model', 'is_paco_architecture', 'needs_timm_paco',
           'plain_timm_model']

EXPORT_FORMS = ('paco', 'timm')

# pretrained_cfg entries that describe the source weights a model was built for, not the trained ones exported
_SOURCE_CFG_KEYS = ('tag', 'hf_hub_id', 'hf_hub_filename', 'url', 'file', 'origin_url', 'paper_ids', 'paper_name',
                    'notes', 'license', 'source', 'state_dict', 'label_names', 'label_descriptions', 'label_offset')

# pretrained_cfg entries of the preprocessing a model was trained and evaluated with: a plain-form export keeps the
# trained (PaCo) model's, not those of the plain architecture's default tag
_PREPROCESS_CFG_KEYS = ('input_size', 'test_input_size', 'min_input_size', 'pool_size', 'test_pool_size',
                        'interpolation', 'mean', 'std', 'crop_pct', 'test_crop_pct', 'crop_mode')

# train.py data arguments that describe the exported model's preprocessing
_DATA_KEYS = ('input_size', 'img_size', 'in_chans', 'mean', 'std', 'crop_pct', 'crop_mode', 'interpolation')


def _architecture(model: nn.Module) -> str:
    return getattr(model, 'pretrained_cfg', {}).get('architecture') or ''


def _input_channels(model: nn.Module) -> Optional[int]:
    """Input channels of ``model``'s stem convolution weight, None if unknown."""
    key = stem_weight_key(model)
    weight = model.state_dict().get(key) if key else None
    return int(weight.shape[1]) if weight is not None and weight.ndim == 4 else None


def needs_timm_paco(architecture: str) -> bool:
    """True when ``architecture`` is registered by timm_paco (loading it needs ``import timm_paco``)."""
    return timm.is_model(architecture) and model_entrypoint(architecture).__module__.startswith('timm_paco.')


def is_paco_architecture(architecture: str) -> bool:
    """True when ``architecture`` is a registered PaCo architecture: timm_paco registers it and it builds a
    PaCoModel (``paco_resnet32``, not the plain ``resnet32_cifar``), so config.json can rebuild the wrapper.
    The check builds the model on the meta device (no memory, no weights)."""
    if not needs_timm_paco(architecture):
        return False
    with torch.device('meta'):
        return is_paco_model(timm.create_model(architecture, pretrained=False))


def plain_timm_model(model: nn.Module) -> nn.Module:
    """A fresh plain timm model equal to ``model``'s backbone (or ``model`` itself when not wrapped), in eval mode.

    The backbone's architecture must be registered by timm itself or by timm_paco (a plain, unwrapped model
    such as ``resnet32_cifar``); another plugin's architecture raises ValueError, since a loader could not know
    what to import.
    """
    backbone = model.backbone if is_paco_model(model) else model
    arch = _architecture(backbone)
    if not timm.is_model(arch):
        raise ValueError(f"form='timm': the backbone has no registered timm architecture (got {arch!r})")
    module = model_entrypoint(arch).__module__
    if not (module.startswith('timm.') or needs_timm_paco(arch)):
        raise ValueError(
            f"form='timm': backbone architecture '{arch}' is registered by {module}, neither by timm nor by "
            f"timm_paco, so a loader would not know what to import; export form='paco' instead")
    plain = timm.create_model(arch, pretrained=False, **get_model_args(backbone))
    state_dict = check_state_dict(
        backbone.state_dict(), plain, source=f'backbone of {_architecture(model) or arch}', model_name=arch)
    plain.load_state_dict(state_dict, strict=True)
    return plain.eval()


def export_model(
        model: nn.Module,
        output_dir: str,
        form: str = 'paco',
        data_config: Optional[Dict[str, Any]] = None,
) -> nn.Module:
    """Write ``model`` in ``form`` to ``output_dir`` (config.json + model.safetensors).

    Returns the model whose weights were written (the plain timm model for ``form='timm'``).
    """
    if form not in EXPORT_FORMS:
        raise ValueError(f"form: expected one of {EXPORT_FORMS}, got {form!r}")
    if form == 'paco':
        if not is_paco_model(model):
            raise ValueError(
                f"form='paco': '{_architecture(model)}' is a plain model without backbone/projector "
                f"(PaCoModel state dicts have backbone.* and projector.* keys); export form='timm' instead")
        arch = _architecture(model)
        if not is_paco_architecture(arch):
            raise ValueError(
                f"form='paco': architecture {arch!r} is not a registered PaCo architecture (e.g. paco_resnet50), so "
                f"create_model could not rebuild the PaCo model from config.json; this happens for a plain timm "
                f"model that train.py wrapped: export form='timm' instead")
        out_model = model
    else:
        out_model = plain_timm_model(model)
    source_cfg, source_traits = out_model.pretrained_cfg, getattr(out_model, '_traits', None)
    out_model.pretrained_cfg = {k: v for k, v in source_cfg.items() if k not in _SOURCE_CFG_KEYS}
    if out_model is not model:
        trained_cfg = getattr(model, 'pretrained_cfg', None) or {}
        for key in _PREPROCESS_CFG_KEYS:
            if key in trained_cfg:
                out_model.pretrained_cfg[key] = trained_cfg[key]
            else:
                out_model.pretrained_cfg.pop(key, None)
    in_chans = _input_channels(out_model)
    if in_chans is not None and not hasattr(out_model, 'in_chans'):
        # timm reads the channel count off an `in_chans` attribute; without one it would record the source
        # cfg's channels, so take them from the stem weights
        out_model._traits = dict(source_traits or {}, in_chans=in_chans)
    try:
        save_for_hf(out_model, output_dir, safe_serialization=True, data_config=data_config)
    finally:
        out_model.pretrained_cfg = source_cfg
        if source_traits is None:
            out_model.__dict__.pop('_traits', None)
        else:
            out_model._traits = source_traits
    return out_model


def _license(model: nn.Module, args: Dict[str, Any]) -> str:
    """The card's licence: a run fine-tuned from the architecture's pretrained weights (``--pretrained``) keeps
    their licence (e.g. cc-by-nc-4.0 for the MAE-based GPaCo ViTs); weights trained from scratch get apache-2.0."""
    return (args.get('pretrained') and (getattr(model, 'pretrained_cfg', None) or {}).get('license')) or 'apache-2.0'


def export_checkpoint(
        checkpoint_path: str,
        output_dir: str,
        model_name: Optional[str] = None,
        form: str = 'paco',
        ema: bool = False,
        results_file: Optional[str] = None,
        repo_name: Optional[str] = None,
        num_classes: Optional[int] = None,
        in_chans: Optional[int] = None,
) -> str:
    """Export a train.py checkpoint (or state dict / .safetensors) to a Hub folder; returns ``output_dir``.

    Args:
        checkpoint_path: the checkpoint file.
        output_dir: folder to write (created if needed).
        model_name: architecture; default the checkpoint's ``args.model``.
        form: ``'paco'`` or ``'timm'`` (see module docstring).
        ema: export ``state_dict_ema``.
        results_file: validate.py ``--results-file`` (json or csv) for the card's results table.
        repo_name: the repo id named in the card (default: the folder name).
        num_classes, in_chans: override what the checkpoint records.
    """
    if form not in EXPORT_FORMS:
        raise ValueError(f"form: expected one of {EXPORT_FORMS}, got {form!r}")
    results = read_results(results_file) if results_file else None
    ckpt: TrainedCheckpoint = read_checkpoint(checkpoint_path, ema=ema)
    model = build_trained_model(ckpt, model_name, num_classes=num_classes, in_chans=in_chans)
    data_config = {k: ckpt.args[k] for k in _DATA_KEYS if ckpt.args.get(k) is not None} or None

    out_model = export_model(model, output_dir, form=form, data_config=data_config)
    readme = model_card(
        repo_name=repo_name or os.path.basename(os.path.normpath(output_dir)),
        architecture=_architecture(out_model),
        form=form,
        args=ckpt.args,
        results=results,
        param_count=sum(p.numel() for p in out_model.parameters()),
        ema=ckpt.ema,
        epoch=ckpt.epoch,
        default_task=getattr(model, 'default_task', None),
        plugin_architecture=form == 'timm' and needs_timm_paco(_architecture(out_model)),
        license=_license(model, ckpt.args),
    )
    with open(os.path.join(output_dir, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(readme)
    return output_dir
