"""The papers' recipes: one timm ``-c`` YAML per row of the authors' results tables.

Each ``<name>.yaml`` beside this file holds train.py flags (every value from the authors' script for that row)
and, under the key ``recipe``, what the row is: the paper, the row, the expected top-1, the source script, the
GPUs and per-GPU batch the script ran with, the GPU-hours the authors report, and notes. train.py reads the flags
with ``-c PATH`` or ``--recipe NAME`` (``recipe`` itself is no flag and is skipped); ``python -m
timm_paco.recipes list`` prints one line per row.

Learning rates follow the linear scaling rule the authors state ("the learning rate should be linearly scaled"):
a recipe gives ``lr_base`` at ``lr_base_size`` (the script's global batch), so timm's train.py scales the rate to
the global batch actually used (``-b`` × GPUs × ``--grad-accum-steps``); ``--lr`` overrides it.
"""
import difflib
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import yaml

__all__ = ['META_KEY', 'RECIPE_DIR', 'Recipe', 'list_recipes', 'get_recipe', 'read_recipe']

RECIPE_DIR = os.path.dirname(os.path.abspath(__file__))
META_KEY = 'recipe'
_META_FIELDS = ('paper', 'row', 'top1', 'source', 'gpus', 'batch_per_gpu', 'gpu_hours')


@dataclass(frozen=True)
class Recipe:
    """One row: ``name`` (the file's stem), ``path``, the ``recipe`` mapping's fields and the train.py ``flags``."""
    name: str
    path: str
    paper: str
    row: str
    top1: float
    source: str
    gpus: int
    batch_per_gpu: int
    gpu_hours: Optional[float]
    notes: str
    flags: Dict[str, Any]


def read_recipe(path: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(recipe description, train.py flags)`` of one YAML file; ValueError naming the file and what is missing."""
    with open(path) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get(META_KEY), dict):
        raise ValueError(f'{path}: a recipe is a mapping of train.py flags with a {META_KEY!r} mapping describing it')
    meta = dict(data.pop(META_KEY))
    missing = [k for k in _META_FIELDS if k not in meta]
    if missing:
        raise ValueError(f'{path}: its {META_KEY!r} mapping lacks {", ".join(missing)}')
    return meta, data


def _load(path: str) -> Recipe:
    meta, flags = read_recipe(path)
    name = os.path.splitext(os.path.basename(path))[0]
    return Recipe(name=name, path=path, notes=str(meta.get('notes', '')).strip(), flags=flags,
                  **{k: meta[k] for k in _META_FIELDS})


def list_recipes() -> List[Recipe]:
    """Every shipped recipe, sorted by name."""
    return [_load(os.path.join(RECIPE_DIR, f)) for f in sorted(os.listdir(RECIPE_DIR)) if f.endswith('.yaml')]


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ValueError naming the closest names otherwise."""
    path = os.path.join(RECIPE_DIR, f'{name}.yaml')
    if os.path.basename(name) != name or not os.path.isfile(path):
        names = [r.name for r in list_recipes()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f'did you mean {", ".join(close)}?' if close else '`python -m timm_paco.recipes list` lists them'
        raise ValueError(f'recipe {name!r}: no such recipe; {hint}')
    return _load(path)
