"""timm_paco.methods: the training methods ``--task`` selects, one module each, in a registry in timm's style.

A method is a ``Method`` (``method.py``): its paper, task builder, flags, defaults and needs. Its module registers
it; train.py, validate.py, the Hub export, the quick start and the benchmark read everything about a method from
here. Methods from outside the package register the same way, found through the ``timm_paco.methods`` entry-point
group or imported by name (train.py's ``--method-modules``). docs/design.md "Adding a method" walks through one.
"""
from .method import (
    LOGIT_ADJUST_MODES, LONG_TAIL_RATIO, PRIORS, Method, MethodFlag, Paper, Quickstart, TaskContext, given,
    is_long_tailed,
)
from .registry import (
    ENTRY_POINT_GROUP, create_task, default_method, get_method, import_method_modules, is_method, list_methods,
    load_method_plugins, register_method, resolve_logit_adjust, task_names,
)
from . import ce, balanced_softmax, paco, gpaco, dscl, focal, class_balanced, ldam_drw
from . import bcl
