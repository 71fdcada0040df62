"""Checks of what a user names on the command line, shared by train.py and validate.py: the device, the model,
the data folder and the ``-c`` YAML of defaults. Each failure is a ``UsageError`` naming the flag, the value and
the fix, raised before anything is read or written."""
import difflib
import logging
import os
from typing import Any, Dict, Optional, Sequence

import torch
import yaml
from timm.models import is_model, list_models

from timm_paco.cli.usage import UsageError
from timm_paco.recipes import META_KEY

__all__ = ['resolve_device', 'check_device', 'check_model_name', 'check_data_dir', 'read_config_defaults',
           'check_input_size']

_logger = logging.getLogger(__name__)
_MODEL_SOURCES = ('hf-hub:', 'hf_hub:', 'local-dir:', 'timm/')


def resolve_device(device: Optional[str]) -> str:
    """``--device`` unset: CUDA where available, else the CPU (with a one-line notice)."""
    if device:
        return device
    if torch.cuda.is_available():
        return 'cuda'
    _logger.info('--device: no CUDA device on this machine, running on the CPU')
    return 'cpu'


def check_device(device: str) -> None:
    """A CUDA device asked for where there is none: name it and suggest the CPU."""
    if device.startswith('cuda') and not torch.cuda.is_available():
        why = 'this torch has no CUDA support' if torch.version.cuda is None else 'no CUDA device is visible'
        raise UsageError(f'--device {device}: CUDA is not available here ({why}); use --device cpu')


def check_model_name(name: str, flag: str = '--model') -> None:
    """An unknown model name: the closest registered names."""
    if name.startswith(_MODEL_SOURCES) or is_model(name.split('.')[0]):
        return
    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.6)
    hint = f'; did you mean {", ".join(close)}?' if close else '; timm.list_models() lists the names'
    raise UsageError(f'{flag} {name}: no such model in timm (or timm_paco){hint}')


def check_data_dir(data_dir: Optional[str], dataset: str, download: bool) -> None:
    """``--data-dir`` must exist unless a torch/ dataset is downloaded into it."""
    if not data_dir or os.path.exists(data_dir):
        return
    if download and dataset.lower().startswith(('torch/', 'tfds/', 'hfds/', 'hfids/')):
        return
    raise UsageError(f'--data-dir {data_dir}: no such folder; point it at the dataset root')


def read_config_defaults(path: str, known: Sequence[str]) -> Dict[str, Any]:
    """The flag defaults of the ``-c`` YAML file: a mapping of flag names (``lr`` or ``--lr``) to values. An
    unreadable file, invalid YAML or an unknown key (with the closest flag) is a UsageError."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise UsageError(f'-c/--config {path}: cannot read it ({e.strerror or e})') from None
    except yaml.YAMLError as e:
        where = getattr(e, 'problem_mark', None)
        at = f' at line {where.line + 1}, column {where.column + 1}' if where is not None else ''
        raise UsageError(f'-c/--config {path}: not valid YAML{at} ({getattr(e, "problem", None) or e})') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f'-c/--config {path}: expected a mapping of flag names to values, got a '
                         f'{type(data).__name__}')
    defaults = {}
    for key, value in data.items():
        if key == META_KEY:  # a paper recipe's description of itself (timm_paco.recipes), no flag
            continue
        dest = str(key).lstrip('-').replace('-', '_')
        if dest not in known:
            close = difflib.get_close_matches(dest, known, n=1, cutoff=0.6)
            hint = f'; did you mean --{close[0].replace("_", "-")}?' if close else ''
            raise UsageError(f'-c/--config {path}: unknown key {key!r} (no such flag){hint}')
        defaults[dest] = value
    return defaults


def check_input_size(model: torch.nn.Module, input_size: Sequence[int], model_name: str) -> None:
    """A patch-embedding model with a fixed input size (timm's ViTs without ``dynamic_img_size``) given another
    ``--img-size``."""
    embed = getattr(model, 'patch_embed', None)
    if embed is None or not getattr(embed, 'strict_img_size', False) or getattr(embed, 'img_size', None) is None:
        return
    expected = tuple(embed.img_size)
    if tuple(input_size[-2:]) != expected:
        size = 'x'.join(map(str, input_size[-2:]))
        raise UsageError(
            f'--img-size {size}: {model_name} takes {expected[0]}x{expected[1]} inputs (a fixed patch grid); use '
            f'--img-size {expected[0]}, or build it for this size with --model-kwargs img_size={input_size[-1]} '
            f'(or dynamic_img_size=True)')
