"""The method registry in timm's style: ``register_method``, ``get_method``, ``list_methods`` (the names ``--task``
takes, in registration order), ``create_task``; and the door for methods from outside the package:
``load_method_plugins`` (the ``timm_paco.methods`` entry-point group) and ``import_method_modules`` (modules by
name, train.py's ``--method-modules``)."""
import fnmatch
import importlib
from importlib.metadata import entry_points
from typing import Dict, List, Optional, Sequence

import torch.nn as nn

from .method import Method

__all__ = ['ENTRY_POINT_GROUP', 'register_method', 'get_method', 'list_methods', 'is_method', 'default_method',
           'task_names', 'create_task', 'resolve_logit_adjust', 'load_method_plugins', 'import_method_modules']

ENTRY_POINT_GROUP = 'timm_paco.methods'

_methods: Dict[str, Method] = {}
_aliases: Dict[str, str] = {}  # another --task value -> the method's name
_plugins = {'loaded': False}


def _with_plugins() -> Dict[str, Method]:
    """The registry, after the entry-point group's methods were imported (once, on the first look-up)."""
    if not _plugins['loaded']:
        _plugins['loaded'] = True
        load_method_plugins()
    return _methods


def register_method(method: Method) -> Method:
    """Add ``method`` under ``method.name``; returns it. ValueError for a name taken by another method."""
    if not isinstance(method, Method):
        raise ValueError(f'method: expected a timm_paco.methods.Method, got {type(method).__name__}')
    known = _methods.get(method.name)
    if known is not None and known is not method:
        raise ValueError(f'method name {method.name!r} is already registered (summary: {known.summary})')
    for name in (method.name, *method.aliases):
        taken = _aliases.get(name) or (name if name in _methods else None)
        if taken is not None and taken != method.name:
            raise ValueError(f'method {method.name!r}: the name {name!r} already names method {taken!r}')
    other_default = [m.name for m in _methods.values() if m.default and m is not method]
    if method.default and other_default:
        raise ValueError(f'method {method.name!r}: default=True, but {other_default[0]!r} is the default')
    _methods[method.name] = method
    _aliases.update({alias: method.name for alias in method.aliases})
    return method


def is_method(name: str) -> bool:
    """Whether ``name`` is a method's name or alias."""
    return name in _with_plugins() or name in _aliases


def task_names() -> List[str]:
    """Every value ``--task`` takes: the methods' names (``list_methods``), then their aliases."""
    return list_methods() + list(_aliases)


def list_methods(filter: str = '') -> List[str]:
    """Registered names in registration order, optionally filtered with a wildcard pattern (``'*paco'``)."""
    return [n for n in _with_plugins() if not filter or fnmatch.fnmatch(n, filter)]


def get_method(name: str) -> Method:
    """The method registered as ``name`` (or an alias of it); ValueError naming the known ones otherwise."""
    name = _aliases.get(name, name)
    if name not in _with_plugins():
        raise ValueError(f'task: unknown task {name!r}; expected one of {", ".join(task_names())}')
    return _methods[name]


def default_method() -> Method:
    """The method of a model that names none (plain cross-entropy)."""
    return next(m for m in _with_plugins().values() if m.default)


def create_task(name: str, model: nn.Module, **kwargs) -> nn.Module:
    """The ``timm.task.TrainingTask`` of method ``name`` around ``model``: ``get_method(name).create_task``."""
    return get_method(name).create_task(model, **kwargs)


def resolve_logit_adjust(name: str, logit_adjust: str, class_counts: Optional[Sequence[int]]) -> bool:
    """Whether method ``name`` adds the class prior for ``logit_adjust`` and ``class_counts``
    (``Method.uses_prior``)."""
    return get_method(name).uses_prior(logit_adjust, class_counts)


def load_method_plugins() -> List[str]:
    """Import every module of the ``timm_paco.methods`` entry-point group (installed packages registering their
    methods); returns the entry points' names. ValueError naming the entry point whose import fails."""
    loaded = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as e:  # a broken plugin is named, not a traceback from deep inside it
            raise ValueError(f'entry point {entry.name!r} ({entry.value}) of group {ENTRY_POINT_GROUP}: '
                             f'{type(e).__name__}: {e}') from e
        loaded.append(entry.name)
    return loaded


def import_method_modules(modules: Sequence[str]) -> None:
    """Import each module by name (it registers its methods); ModuleNotFoundError / the module's own error
    otherwise."""
    for module in modules:
        importlib.import_module(module)
