"""Loss registry in timm's naming style: ``register_loss``, ``create_loss``, ``list_losses``, ``is_loss``.

Every registered loss is called as ``loss(logits, features, labels, queue_features=None, queue_labels=None)``.
"""
import fnmatch
from typing import Callable, Dict, List

import torch.nn as nn

__all__ = ['register_loss', 'create_loss', 'list_losses', 'is_loss']

_loss_entrypoints: Dict[str, Callable[..., nn.Module]] = {}


def register_loss(name: str) -> Callable:
    """Decorator registering a loss class (or factory) under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f'register_loss name must be a non-empty str, got {name!r}')

    def _register(fn: Callable[..., nn.Module]):
        if name in _loss_entrypoints and _loss_entrypoints[name] is not fn:
            raise ValueError(f'loss name {name!r} is already registered to {_loss_entrypoints[name]!r}')
        _loss_entrypoints[name] = fn
        return fn

    return _register


def is_loss(name: str) -> bool:
    return name in _loss_entrypoints


def list_losses(filter: str = '') -> List[str]:
    """Sorted registered names, optionally filtered with a wildcard pattern (e.g. ``'*paco'``)."""
    names = sorted(_loss_entrypoints)
    return fnmatch.filter(names, filter) if filter else names


def create_loss(name: str, **kwargs) -> nn.Module:
    """Build the loss registered as ``name`` with ``kwargs`` (e.g. ``num_classes=1000``)."""
    if name not in _loss_entrypoints:
        raise ValueError(f'loss name {name!r} is not registered; available: {", ".join(list_losses())}')
    return _loss_entrypoints[name](**kwargs)
