""" What a registered name adds to a stock timm architecture: its paper's training recipe.

A registered name (``paco_resnet50``, ``vit_base_patch16_gpaco_224``, ``paco_resnet32``) builds a plain timm model;
its pretrained cfgs carry the papers' weights and this table carries what only training needs: the task
``train.py`` picks when ``--task`` is not given, and the projector the task builds (``timm_paco.tasks``).
``stock_architecture`` is the timm name the weights load into without the plugin (``resnet50``), or the plugin's
own architecture where timm has none (``resnet32_cifar``).
"""
from dataclasses import dataclass
from typing import Dict, Optional

__all__ = ['PaperRecipe', 'register_recipe', 'recipe_for', 'recipe_act', 'stock_architecture']


@dataclass(frozen=True)
class PaperRecipe:
    """Training defaults of a registered name.

    Args:
        task: ``'paco'``, ``'gpaco'`` or ``'dscl'``, the task train.py uses without ``--task``.
        stock_architecture: timm architecture the model is an instance of (``'resnet50'``).
        proj_dim: Embedding width D of the projector.
        proj_type: ``'mlp'`` (Linear-BN-act-Linear), ``'mlp2'`` (Linear-act-Linear) or ``'mlp3'``.
        proj_act: Projector activation (timm name).
    """
    task: str
    stock_architecture: str
    proj_dim: int = 128
    proj_type: str = 'mlp'
    proj_act: str = 'relu'


_RECIPES: Dict[str, PaperRecipe] = {}


def register_recipe(name: str, recipe: PaperRecipe) -> None:
    """Record ``recipe`` for the registered architecture ``name`` (called beside ``@register_model``)."""
    _RECIPES[name] = recipe


def recipe_for(architecture: Optional[str]) -> Optional[PaperRecipe]:
    """The recipe of a registered name (a ``name.tag`` is looked up by its name), None for any other model."""
    return _RECIPES.get((architecture or '').partition('.')[0])


def recipe_act(architecture: Optional[str], proj_type: str) -> Optional[str]:
    """The recipe's projector activation when ``proj_type`` is the recipe's layout (the GPaCo ResNets' mlp3 is ReLU,
    the ViTs' GELU), None otherwise (the layout's own default applies)."""
    recipe = recipe_for(architecture)
    return recipe.proj_act if recipe is not None and recipe.proj_type == proj_type else None


def stock_architecture(architecture: str) -> str:
    """timm architecture a model of ``architecture`` is built as: ``resnet50`` for ``paco_resnet50``, the name itself
    for any model that is not a registered PaCo name."""
    recipe = recipe_for(architecture)
    return recipe.stock_architecture if recipe else architecture
