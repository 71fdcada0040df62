"""Export a trained checkpoint to a Hugging Face Hub folder: config.json, model.safetensors, README.md and, when
the checkpoint has one, the training projector in projector.safetensors (``timm_paco.tasks.attach_projector``).

Two forms, the same plain timm weights in both:
  * ``'timm'`` (default): config.json names the stock timm architecture (``resnet50`` for ``paco_resnet50``), so
    ``timm.create_model('hf-hub:…' / 'local-dir:…', pretrained=True)`` loads it with no plugin installed, unless
    the architecture is one only timm_paco registers (``resnet32_cifar``): then loading needs ``import timm_paco``
    (see ``needs_timm_paco``).
  * ``'paco'``: config.json names the registered PaCo name (``paco_resnet50``) and its pretrained cfg; loading
    needs ``import timm_paco``.
"""
import os
from typing import Any, Dict, Optional

import timm
from timm.models import get_model_args, model_entrypoint, save_for_hf
from torch import nn

from ..models.checkpoint_filter import check_state_dict
from ..models.recipes import recipe_act, recipe_for, stock_architecture
from ..output_target import check_output_folder, clear_folder
from ..tasks.projector_file import PROJECTOR_FILE, projector_args, save_projector
from .build import build_trained_model, stem_weight_key
from .checkpoint import TrainedCheckpoint, read_checkpoint
from .license import card_license
from .model_card import model_card, read_results

__all__ = ['EXPORT_FORMS', 'export_checkpoint', 'export_model', 'is_paco_architecture', 'needs_timm_paco',
           'plain_timm_model']

EXPORT_FORMS = ('timm', 'paco')

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
    """True when ``architecture`` is a registered PaCo / GPaCo name (``paco_resnet32``, not ``resnet32_cifar``)."""
    return recipe_for(architecture) is not None


def plain_timm_model(model: nn.Module) -> nn.Module:
    """A fresh model of ``model``'s stock timm architecture (``resnet50`` for a ``paco_resnet50``) with its weights,
    in eval mode; ``model`` itself when it already is one.

    The architecture must be registered by timm itself or by timm_paco; another plugin's architecture raises
    ValueError, since a loader could not know what to import.
    """
    arch = _architecture(model)
    stock = stock_architecture(arch)
    if not timm.is_model(stock):
        raise ValueError(f"form='timm': the model has no registered timm architecture (got {arch!r})")
    module = model_entrypoint(stock).__module__
    if not (module.startswith('timm.') or needs_timm_paco(stock)):
        raise ValueError(
            f"form='timm': architecture '{stock}' is registered by {module}, neither by timm nor by timm_paco, so a "
            f"loader would not know what to import")
    if stock == arch:
        return model.eval()
    plain = timm.create_model(stock, pretrained=False, **get_model_args(model))
    state_dict = check_state_dict(model.state_dict(), plain, source=f'model {arch}', model_name=stock)
    plain.load_state_dict(state_dict, strict=True)
    return plain.eval()


def export_model(
        model: nn.Module,
        output_dir: str,
        form: str = 'timm',
        data_config: Optional[Dict[str, Any]] = None,
) -> nn.Module:
    """Write ``model`` in ``form`` to ``output_dir`` (config.json + model.safetensors).

    Returns the model whose weights were written (the stock timm model for ``form='timm'``).
    """
    if form not in EXPORT_FORMS:
        raise ValueError(f"form: expected one of {EXPORT_FORMS}, got {form!r}")
    if form == 'paco':
        arch = _architecture(model)
        if not is_paco_architecture(arch):
            raise ValueError(
                f"form='paco': architecture {arch!r} is not a registered PaCo name (e.g. paco_resnet50), so its "
                f"config.json would name no PaCo pretrained cfg; export form='timm' instead")
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


def export_projector(ckpt: TrainedCheckpoint, model: nn.Module, output_dir: str) -> bool:
    """Write the checkpoint's projector to ``output_dir/projector.safetensors``; False when it has none."""
    if not ckpt.projector:
        return False
    proj_type = projector_args(ckpt.projector)['proj_type']  # read off the weights: the seeds record none
    args = projector_args(ckpt.projector, ckpt.projector_args, recipe_act=recipe_act(_architecture(model), proj_type))
    save_projector(ckpt.projector, args, os.path.join(output_dir, PROJECTOR_FILE))
    return True


def export_checkpoint(
        checkpoint_path: str,
        output_dir: str,
        model_name: Optional[str] = None,
        form: str = 'timm',
        ema: bool = False,
        results_file: Optional[str] = None,
        repo_name: Optional[str] = None,
        num_classes: Optional[int] = None,
        in_chans: Optional[int] = None,
        overwrite: bool = False,
        license: Optional[str] = None,
        overwrite_flag: str = 'overwrite=True',
) -> str:
    """Export a train.py checkpoint (or state dict / .safetensors) to a Hub folder; returns ``output_dir``.

    A non-empty ``output_dir`` is refused (ValueError) unless ``overwrite``: then everything in it goes once the
    checkpoint has been read and checked, so no file of another model stays beside the export. A folder holding the
    checkpoint or a training run is refused even so (``timm_paco.output_target``).

    Args:
        checkpoint_path: the checkpoint file.
        output_dir: folder to write (created if needed).
        model_name: architecture; default the checkpoint's ``args.model``.
        form: ``'timm'`` or ``'paco'`` (see module docstring).
        ema: export ``state_dict_ema``.
        results_file: validate.py ``--results-file`` (json or csv) for the card's results table.
        repo_name: the repo id named in the card (default: the folder name).
        num_classes, in_chans: override what the checkpoint records.
        overwrite: replace the contents of a non-empty ``output_dir``; ``overwrite_flag`` is how the refusal names
            it (a CLI gives its flag).
        license: the card's licence for a train.py run (``timm_paco.hub.license.card_license``: the authors'
            weights keep theirs).
    """
    if form not in EXPORT_FORMS:
        raise ValueError(f"form: expected one of {EXPORT_FORMS}, got {form!r}")
    results = read_results(results_file) if results_file else None
    existing = check_output_folder(output_dir, [checkpoint_path], overwrite, 'output folder', overwrite_flag)
    ckpt: TrainedCheckpoint = read_checkpoint(checkpoint_path, ema=ema)
    model = build_trained_model(ckpt, model_name, num_classes=num_classes, in_chans=in_chans)
    card_licence, licence_source = card_license(model, ckpt.args, license)
    clear_folder(output_dir, existing)
    data_config = {k: ckpt.args[k] for k in _DATA_KEYS if ckpt.args.get(k) is not None} or None

    out_model = export_model(model, output_dir, form=form, data_config=data_config)
    has_projector = export_projector(ckpt, model, output_dir)
    recipe = recipe_for(_architecture(model))
    readme = model_card(
        repo_name=repo_name or os.path.basename(os.path.normpath(output_dir)),
        architecture=_architecture(out_model),
        form=form,
        args=ckpt.args,
        results=results,
        param_count=sum(p.numel() for p in out_model.parameters()),
        ema=ckpt.ema,
        epoch=ckpt.epoch,
        default_task=recipe.task if recipe else None,
        plugin_architecture=form == 'timm' and needs_timm_paco(_architecture(out_model)),
        license=card_licence,
        license_source=licence_source,
        has_projector=has_projector,
    )
    with open(os.path.join(output_dir, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(readme)
    return output_dir
