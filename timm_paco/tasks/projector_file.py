""" The projector outside training: its arguments from a checkpoint, ``projector.safetensors`` beside exported
weights, and the documented way back to the embedding head.

Inference needs the plain timm model only; a user who wants the contrastive embeddings too rebuilds the training
module from a training checkpoint or a Hub export folder::

    model = timm.create_model('local-dir:export/', pretrained=True)      # or 'hf-hub:...'
    module = timm_paco.tasks.attach_projector(model, 'export/')            # or a train.py checkpoint
    logits, embeddings = module(x)

The file holds the projector's weights and, in its metadata, the ``Projector`` arguments (``proj_type``, widths,
activation).
"""
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from timm_paco.checkpoint_io import load_checkpoint_file
from timm_paco.models.checkpoint_filter import split_state_dict, unwrap_checkpoint
from .contrastive_module import ContrastiveModule, place_like
from .projector import Projector, default_proj_act

__all__ = ['PROJECTOR_FILE', 'checkpoint_projector', 'projector_args', 'save_projector', 'load_projector',
           'attach_projector']

PROJECTOR_FILE = 'projector.safetensors'
_META_KEY = 'projector_args'


def _width(state: Mapping[str, torch.Tensor], index: int, dim: int = 0) -> int:
    return int(state[f'{index}.weight'].shape[dim])


def projector_args(
        state: Mapping[str, torch.Tensor],
        recorded: Optional[Mapping[str, Any]] = None,
        recipe_act: Optional[str] = None,
) -> Dict[str, Any]:
    """``Projector`` arguments for the weights ``state`` (keys ``0.weight``, ...).

    ``recorded`` (a checkpoint's ``task_state['projector_args']``) wins; else the layout and widths are read off the
    weights ('mlp': Linear 0, BN 1, Linear 3; 'mlp2': Linear 0, 2; 'mlp3': Linear 0, 2, 4) and the activation, which
    has no weights, is ``recipe_act`` (the model's paper recipe) or the layout's default. ValueError for weights of
    no layout."""
    if recorded:
        return dict(recorded)
    if '1.running_mean' in state and '3.weight' in state:
        proj_type, last = 'mlp', 3
    elif '4.weight' in state:
        proj_type, last = 'mlp3', 4
    elif '2.weight' in state and '0.weight' in state:
        proj_type, last = 'mlp2', 2
    else:
        raise ValueError(f'projector weights of no known layout (mlp: 0, 1 (BN), 3; mlp2: 0, 2; mlp3: 0, 2, 4): '
                         f'{sorted(state)}')
    return dict(in_dim=_width(state, 0, 1), out_dim=_width(state, last), proj_type=proj_type,
                hidden_dim=_width(state, 0), act_layer=recipe_act or default_proj_act(proj_type))


def checkpoint_projector(
        checkpoint: Any,
        state_dict: Mapping[str, torch.Tensor],
        ema: bool = False,
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """(weights, recorded ``Projector`` arguments) of the projector in a checkpoint object: its ``task_state``
    (``task_state_ema`` with ``ema``) entry, else the projector part of its ``state_dict`` (the seeds' layouts);
    ``({}, {})`` when it has none."""
    task_state = checkpoint.get('task_state_ema' if ema else 'task_state') if isinstance(checkpoint, Mapping) else None
    if isinstance(task_state, Mapping) and isinstance(task_state.get('projector'), Mapping):
        return dict(task_state['projector']), dict(task_state.get(_META_KEY) or {})
    return split_state_dict(state_dict)[1], {}


def save_projector(state: Mapping[str, torch.Tensor], args: Mapping[str, Any], path: str) -> None:
    """Write projector weights and their ``Projector`` arguments to the safetensors file ``path``."""
    import safetensors.torch
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    # one metadata entry: safetensors writes several in no fixed order, and an export must be byte-reproducible
    safetensors.torch.save_file(tensors, path, metadata={_META_KEY: json.dumps(dict(args), sort_keys=True)})


def load_projector(source: str) -> Projector:
    """The projector of ``source``: a ``projector.safetensors`` file, a folder holding one (a Hub export), or a
    train.py checkpoint (its ``task_state``). ValueError naming ``source`` when it holds none."""
    path = os.path.join(source, PROJECTOR_FILE) if os.path.isdir(source) else source
    if path.endswith('.safetensors'):
        import safetensors
        if not os.path.isfile(path):
            raise FileNotFoundError(f"'{path}' does not exist: the export has no projector (its checkpoint had none)")
        with safetensors.safe_open(path, framework='pt') as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        args = projector_args(state, json.loads(meta[_META_KEY]) if _META_KEY in meta else None)
    else:
        checkpoint = load_checkpoint_file(path)
        state, recorded = checkpoint_projector(checkpoint, unwrap_checkpoint(checkpoint, source=source))
        if not state:
            raise ValueError(f"'{source}' holds no projector weights: train with --task paco|gpaco")
        args = projector_args(state, recorded)
    projector = Projector(**args)
    projector.load_state_dict(state, strict=True)
    return projector


def attach_projector(model: nn.Module, source: str) -> ContrastiveModule:
    """``ContrastiveModule(model, load_projector(source))`` on the model's device and dtype."""
    return ContrastiveModule(model, place_like(load_projector(source), model))

