"""``create_task(name, model, ...)``: the training tasks train.py selects with ``--task``.

Hyper-parameters left ``None`` take the defaults of the task's loss in ``timm_paco.losses`` (PaCo: alpha
0.05, beta 1, gamma 1, temperature 0.2; GPaCo: the same with label smoothing 0.1) and of the task (PaCo: queue
8192, momentum 0.999; GPaCo: queue 8192), the values of the seeds (dvlab-research/Parametric-Contrastive-Learning)
and of the GPaCo paper. GPaCo's 0.1 is the seeds' full-ImageNet and ViT value; their long-tailed GPaCo scripts
use no smoothing (``smoothing=0``); every GPaCo script keeps a queue (8192 slots, 1024 on CIFAR). DSCL: alpha 1/9,
temperature 0.07 (``timm_paco.losses.DSCLLoss``), PaCo's queue and momentum, no class prior, no smoothing.

Class prior (logit adjustment) ``prior_tau · log p_c`` from the training class counts:
* ``balanced-softmax`` always uses it (``class_counts`` required);
* ``paco`` / ``gpaco`` use it when ``logit_adjust='on'``, or ``'auto'`` (default) and the counts are
  long-tailed, i.e. ``max / min > LONG_TAIL_RATIO`` (2: ImageNet-1k's 1300 / 732 stays balanced, every
  long-tailed benchmark, imbalance 10 to 500, is adjusted); never with ``'off'``;
* ``ce`` never.
"""
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn as nn
from timm.utils import unwrap_model

from timm_paco.losses import create_loss

from .classification import MultiViewClassificationTask
from .classifier_retrain import RETRAIN_MODES, ClassifierRetrainTask
from .ldam import LDAMTask
from .contrastive_module import ContrastiveModule
from .gpaco import GPaCoTask
from .dscl import DSCLTask
from .paco import PaCoTask

__all__ = [
    'TASK_NAMES', 'CE_FAMILY', 'UNSMOOTHED_TASKS',
    'CONTRASTIVE_TASKS', 'KEY_ENCODER_TASKS', 'TASK_SMOOTHING', 'LOGIT_ADJUST_MODES', 'LONG_TAIL_RATIO',
    'create_task', 'is_long_tailed', 'resolve_logit_adjust',
]

TASK_NAMES = ('ce', 'balanced-softmax', 'paco', 'gpaco', 'dscl', 'focal', 'class-balanced', 'ldam-drw')
CE_FAMILY = ('ce', 'balanced-softmax', 'focal', 'class-balanced')  # a loss on the logits alone
UNSMOOTHED_TASKS = ('dscl', 'focal', 'class-balanced', 'ldam-drw')  # losses that take no label smoothing
CONTRASTIVE_TASKS = ('paco', 'gpaco', 'dscl')  # a projector beside the model
KEY_ENCODER_TASKS = ('paco', 'dscl')  # MoCo's skeleton: query / key views, key encoder, labelled queue
# train.py's label smoothing per task when --smoothing is not given: timm's 0.1 for CE, each paper's for the rest
TASK_SMOOTHING = {'ce': 0.1, 'balanced-softmax': 0.0, 'paco': 0.0, 'gpaco': 0.1, 'dscl': 0.0, 'focal': 0.0,
                  'class-balanced': 0.0, 'ldam-drw': 0.0}
LOGIT_ADJUST_MODES = ('auto', 'on', 'off')
LONG_TAIL_RATIO = 2.0
_LOSS_NAMES = {'ce': 'ce', 'balanced-softmax': 'balanced_softmax', 'paco': 'paco', 'gpaco': 'gpaco',
               'dscl': 'dscl', 'focal': 'focal', 'class-balanced': 'class_balanced', 'ldam-drw': 'ldam'}


def is_long_tailed(class_counts: Sequence[int], ratio: float = LONG_TAIL_RATIO) -> bool:
    """True when the largest class count exceeds ``ratio`` times the smallest (an empty class counts)."""
    counts = [int(c) for c in class_counts]
    if not counts:
        raise ValueError('class_counts: expected a non-empty list of per-class sample counts')
    return min(counts) == 0 or max(counts) > ratio * min(counts)


def resolve_logit_adjust(task: str, logit_adjust: str, class_counts: Optional[Sequence[int]]) -> bool:
    """Whether ``task`` adds the class prior ``log p_c`` to its centre logits (rule in the module docstring)."""
    if logit_adjust not in LOGIT_ADJUST_MODES:
        raise ValueError(f'logit_adjust must be one of {LOGIT_ADJUST_MODES}, got {logit_adjust!r}')
    if task == 'balanced-softmax':
        return True
    if task not in ('paco', 'gpaco') or logit_adjust == 'off':
        return False
    if logit_adjust == 'on':
        if class_counts is None:
            raise ValueError(f'logit_adjust=on: {task} needs the training class counts, none were given')
        return True
    return class_counts is not None and is_long_tailed(class_counts)


def _loss_weights(name: str, smoothing, alpha, beta, gamma, temperature, focal_gamma=None,
                  cb_beta=None) -> Dict[str, float]:
    """The loss keywords of ``name`` that were given (None keeps the loss default)."""
    if focal_gamma is not None and name != 'focal':
        raise ValueError(f'focal_gamma={focal_gamma}: only the focal task has it, not {name}')
    if cb_beta is not None and name not in ('class-balanced', 'ldam-drw'):
        raise ValueError(f'cb_beta={cb_beta}: only the class-balanced and ldam-drw tasks have it, not {name}')
    if smoothing and name in UNSMOOTHED_TASKS:
        raise ValueError(f'smoothing={smoothing}: the {name} loss takes no label smoothing')
    if name in ('focal', 'class-balanced', 'ldam-drw'):
        given = dict(gamma=focal_gamma) if name == 'focal' else dict(beta=cb_beta)
    elif name == 'dscl':
        if beta is not None or gamma is not None:
            raise ValueError('beta / gamma: the dscl loss has only alpha and temperature')
        given = dict(alpha=alpha, temperature=temperature)
    else:
        given = dict(label_smoothing=smoothing)
        if name in ('paco', 'gpaco'):
            given.update(alpha=alpha, beta=beta, gamma=gamma, temperature=temperature)
    return {k: v for k, v in given.items() if v is not None}


def create_task(
        name: str,
        model: nn.Module,
        num_views: Optional[int] = None,
        class_counts: Optional[Sequence[int]] = None,
        logit_adjust: str = 'auto',
        prior_tau: float = 1.0,
        smoothing: Optional[float] = None,
        alpha: Optional[float] = None,
        beta: Optional[float] = None,
        gamma: Optional[float] = None,
        temperature: Optional[float] = None,
        queue_size: Optional[int] = None,
        momentum: float = 0.999,
        projector: Optional[Dict[str, Any]] = None,
        pbsd_weight: Optional[float] = None,
        classifier_retrain: Optional[str] = None,
        focal_gamma: Optional[float] = None,
        cb_beta: Optional[float] = None,
        drw_epoch: Optional[int] = None,
        view_forward: str = 'per-view',
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
        verbose: bool = True,
):
    """Build the ``timm.task.TrainingTask`` for ``name`` in ``TASK_NAMES`` around ``model``.

    Args:
        name: ``ce``, ``balanced-softmax``, ``paco``, ``gpaco`` or ``dscl``.
        model: A timm classifier (``paco`` / ``gpaco`` put their projector beside it), or for ``paco`` / ``gpaco``
            a ``ContrastiveModule`` with its projector already made.
        num_views: Views per image; default 2 for ``paco`` (fixed) and ``gpaco``, 1 for the CE baselines.
        class_counts: Training samples per class ``[C]`` (Balanced Softmax, logit adjustment).
        logit_adjust: ``auto``, ``on`` or ``off`` for ``paco`` / ``gpaco`` (see the module docstring).
        prior_tau: Strength of the class prior, ``logits + prior_tau · log p`` (1 = Balanced Softmax and the
            PaCo papers); an error where ``name`` uses no prior.
        smoothing: Label smoothing of the CE / centre term; None keeps the loss default.
        alpha, beta, gamma, temperature: PaCo loss weights and temperature (dscl: alpha and temperature);
            None keeps the loss default.
        queue_size: Queue slots; None keeps the task's default (paco, dscl, gpaco: 8192; gpaco 0 = no queue).
            Not taken by the CE baselines.
        momentum: PaCo key encoder EMA decay.
        pbsd_weight: ``dscl``'s PBSD weight λ (None: the paper's 1.5; 0: no PBSD, plain view-major input).
        classifier_retrain: ``crt`` or ``lws`` for the CE family (``ce``, ``balanced-softmax``, ``focal``,
            ``class-balanced``): train only the classifier of a stage-1 model (``ClassifierRetrainTask``).
        focal_gamma: ``focal``'s γ (None: 1). cb_beta: ``class-balanced``'s (and ``ldam-drw``'s DRW)
            effective-number β (None: 0.9999); both need ``class_counts``.
        drw_epoch: ``ldam-drw``: the epoch from which the classes are re-weighted (None: never).
        projector: ``paco`` / ``gpaco`` projector arguments (``proj_dim``, ``proj_type``, ``proj_act``,
            ``proj_hidden_dim``); None or absent ones keep the model's paper recipe (``timm_paco.models.recipe_for``).
        view_forward: ``'per-view'`` (one encoder forward per view / PBSD patch group, the authors' BatchNorm
            batches) or ``'joint'`` (one forward of all rows); ``timm_paco.tasks.VIEW_FORWARDS``.
    """
    if name not in TASK_NAMES:
        raise ValueError(f'task: unknown task {name!r}; expected one of {", ".join(TASK_NAMES)}')
    if queue_size is not None and name not in CONTRASTIVE_TASKS:
        raise ValueError(f'queue_size={queue_size}: task {name} keeps no queue (paco, gpaco and dscl do)')
    projector = {k: v for k, v in (projector or {}).items() if v is not None}
    if projector and name not in CONTRASTIVE_TASKS:
        raise ValueError(f'projector={projector}: task {name} trains no projector (paco, gpaco and dscl do)')
    plain = unwrap_model(model)
    num_classes = (plain.backbone if isinstance(plain, ContrastiveModule) else plain).num_classes
    if class_counts is not None and len(class_counts) != num_classes:
        raise ValueError(
            f'class_counts: {len(class_counts)} counts for a model with num_classes={num_classes}')
    loss_kwargs = dict(num_classes=num_classes, **_loss_weights(name, smoothing, alpha, beta, gamma, temperature,
                                                                 focal_gamma, cb_beta))
    if name in ('class-balanced', 'ldam-drw'):
        if class_counts is None:
            raise ValueError(f'class_counts: {name} weighs the classes by their training counts, none given')
        loss_kwargs['class_counts'] = list(class_counts)
    if resolve_logit_adjust(name, logit_adjust, class_counts):
        if class_counts is None:
            raise ValueError(f'class_counts: {name} needs the training class counts (Balanced Softmax prior)')
        loss_kwargs['class_counts'] = list(class_counts)
        loss_kwargs['tau' if name == 'balanced-softmax' else 'prior_tau'] = prior_tau
    elif prior_tau != 1.0:
        raise ValueError(f'prior_tau={prior_tau}: task {name} uses no class prior here '
                         f'(ce never; paco / gpaco only with logit adjustment on long-tailed class counts)')
    criterion = create_loss(_LOSS_NAMES[name], **loss_kwargs)

    if classifier_retrain is not None and name not in CE_FAMILY:
        raise ValueError(f'classifier_retrain={classifier_retrain!r}: the second stage trains a classifier with '
                         f'{", ".join(CE_FAMILY)}, not task {name}')
    if pbsd_weight is not None and name != 'dscl':
        raise ValueError(f'pbsd_weight={pbsd_weight}: PBSD is part of dscl, not of task {name}')
    common = dict(view_forward=view_forward, device=device, dtype=dtype, verbose=verbose)
    queued = {} if queue_size is None else dict(queue_size=queue_size)  # None: the task class's default
    if name in KEY_ENCODER_TASKS:
        if num_views not in (None, 2):
            raise ValueError(f'num_views: {name} takes 2 views per image (query, key), got {num_views}')
        if name == 'dscl' and pbsd_weight is not None:
            queued['pbsd_weight'] = pbsd_weight
        task_class = PaCoTask if name == 'paco' else DSCLTask
        return task_class(model, criterion, momentum=momentum, projector=projector, **queued, **common)
    if name == 'gpaco':
        return GPaCoTask(model, criterion, num_views=2 if num_views is None else num_views, projector=projector,
                         **queued, **common)
    num_views = 1 if num_views is None else num_views
    if drw_epoch is not None and name != 'ldam-drw':
        raise ValueError(f'drw_epoch={drw_epoch}: deferred re-weighting is part of ldam-drw, not of task {name}')
    if name == 'ldam-drw':
        if classifier_retrain is not None:
            raise ValueError('classifier_retrain: ldam-drw trains its own cosine classifier, not a second stage')
        return LDAMTask(model, criterion, drw_epoch=drw_epoch, num_views=num_views, **common)
    if classifier_retrain is not None:
        return ClassifierRetrainTask(model, criterion, mode=classifier_retrain, num_views=num_views, **common)
    return MultiViewClassificationTask(model, criterion, num_views=num_views, **common)
