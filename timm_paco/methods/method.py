"""What a training method is: ``Method`` (its name, paper, task builder, flags and needs), ``MethodFlag`` (one of its
train.py flags) and ``TaskContext`` (what every task builder receives).

A method's module builds one ``Method`` and registers it (``timm_paco.methods.register_method``); train.py,
validate.py, the Hub export, the quick start and the benchmark read everything about it from there.
"""
import argparse
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from timm.utils import unwrap_model

__all__ = ['PRIORS', 'LOGIT_ADJUST_MODES', 'LONG_TAIL_RATIO', 'Paper', 'MethodFlag', 'Quickstart', 'TaskContext',
           'Method', 'is_long_tailed', 'given']

# A method's class prior (logit adjustment, ``prior_tau · log p_c`` from the training class counts):
# 'none'; 'always' (Balanced Softmax); 'logit-adjust' (on, off, or auto = when the counts are long-tailed).
PRIORS = ('none', 'always', 'logit-adjust')
LOGIT_ADJUST_MODES = ('auto', 'on', 'off')
LONG_TAIL_RATIO = 2.0  # ImageNet-1k's 1300 / 732 stays balanced; every long-tailed benchmark (10 to 500) is not


def is_long_tailed(class_counts: Sequence[int], ratio: float = LONG_TAIL_RATIO) -> bool:
    """True when the largest class count exceeds ``ratio`` times the smallest (an empty class counts)."""
    counts = [int(c) for c in class_counts]
    if not counts:
        raise ValueError('class_counts: expected a non-empty list of per-class sample counts')
    return min(counts) == 0 or max(counts) > ratio * min(counts)


def given(**values) -> Dict[str, Any]:
    """The keywords whose value is not None (None keeps the callee's default)."""
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Paper:
    """``citation``: one line (authors, title, venue); ``bibtex``: the entry for a model card; ``code``: the
    authors' repository."""
    citation: str
    bibtex: str = ''
    code: str = ''


@dataclass(frozen=True)
class MethodFlag:
    """One train.py flag of a method: ``option`` (``--paco-alpha``), the task builder's ``keyword`` it feeds
    (None: read elsewhere, e.g. by the data pipeline), ``argparse_kwargs`` for ``add_argument``, and ``late_default``:
    the value of a flag left at None, from the other flags (e.g. 80 % of ``--epochs``)."""
    option: str
    keyword: Optional[str] = None
    argparse_kwargs: Mapping[str, Any] = field(default_factory=dict)
    late_default: Optional[Callable[[argparse.Namespace], Any]] = None

    @property
    def dest(self) -> str:
        return self.option.lstrip('-').replace('-', '_')


@dataclass(frozen=True)
class Quickstart:
    """The method on the Fashion-MNIST-LT quick start and benchmark (``timm_paco.runs``): the ``model`` trained,
    ``flags(budget)`` its own train.py flags for a budget dict (``timm_paco.runs.RECIPE``), and ``second_stage``:
    the ``--classifier-retrain`` mode of a second stage on the first (``crt``; None: one stage)."""
    model: str
    flags: Callable[[Dict[str, Any]], List[str]] = lambda budget: []
    second_stage: Optional[str] = None


@dataclass(frozen=True)
class TaskContext:
    """What every task builder receives besides its own options: the model and the settings all methods share.

    ``prior``: whether the loss adds the class prior (resolved from the method's rule); ``class_counts``:
    training samples per class ``[C]`` or None; ``smoothing``: None keeps the loss default."""
    model: nn.Module
    num_classes: int
    num_views: Optional[int]
    class_counts: Optional[List[int]]
    prior: bool
    prior_tau: float
    smoothing: Optional[float]
    projector: Dict[str, Any]
    classifier_retrain: Optional[str]
    view_forward: str
    device: Optional[torch.device]
    dtype: Optional[torch.dtype]
    verbose: bool

    def common(self) -> Dict[str, Any]:
        """The ``ViewTask`` keywords every task takes."""
        return dict(view_forward=self.view_forward, device=self.device, dtype=self.dtype, verbose=self.verbose)

    def views(self, default: int = 1) -> int:
        return default if self.num_views is None else self.num_views

    def smoothing_kwargs(self) -> Dict[str, float]:
        return {} if self.smoothing is None else dict(label_smoothing=self.smoothing)

    def prior_kwargs(self, tau_keyword: str = 'prior_tau') -> Dict[str, Any]:
        """The loss keywords of the class prior (``class_counts`` and its strength) when it is on, else none."""
        return dict(class_counts=self.class_counts, **{tau_keyword: self.prior_tau}) if self.prior else {}

    def counts(self, name: str) -> List[int]:
        """The class counts a loss weighs its classes by; ValueError naming the argument when none were given."""
        if self.class_counts is None:
            raise ValueError(f'class_counts: {name} weighs the classes by their training counts, none given')
        return list(self.class_counts)


def _keywords(build: Callable) -> Tuple[str, ...]:
    """The own options of a task builder ``build(context, **options)``."""
    return tuple(list(inspect.signature(build).parameters)[1:])


@dataclass(frozen=True)
class Method:
    """A training method: everything train.py and the tools know about it.

    Args:
        name: The ``--task`` value.
        aliases: Other ``--task`` values naming it (timm's ``classification`` for cross-entropy).
        summary: One line: what it trains (model cards, ``--help``).
        build: ``build(context: TaskContext, **options) -> timm.task.TrainingTask``; its keyword parameters are the
            method's own options (None keeps the loss's or task's default).
        paper: Its paper (model card citation); None for a baseline.
        label: Its name in tables (default: ``name``).
        flags: Its own train.py flags (a flag shared with another method is the same ``MethodFlag`` object).
        smoothing: train.py's ``--smoothing`` default; None: the loss takes no label smoothing (refused).
        views: Default ``--paco-views`` recipe; None: timm's single-view loader.
        num_views: The one view count it takes (2: query and key); None: any.
        view_forward: How its views pass through the model unless told (``'per-view'``: one forward per view,
            BatchNorm per view's batch; ``'joint'``: one forward of all views), its authors' BatchNorm batches.
        prior: Its class prior, one of ``PRIORS``.
        class_counts: Its loss weighs classes by the training counts besides any prior.
        key_encoder: It keeps an exponential moving average encoder (refused with a 16-bit model).
        projector: It trains a projector beside the model (first-order optimisers only, not scriptable).
        second_stage: It can train the classifier of a stage-1 model (``--classifier-retrain``).
        soft_targets: timm's mixup / classification losses may replace its loss (``--mixup``, ``--loss``).
        default: The method of a model that names none (one registered method is).
        patches: ``patches(args)``: the run's views carry patch crops (DSCL's PBSD).
        check: ``check(args)``: ValueError naming the flag for values that cannot work (after late defaults).
        tags: Hub tags of its model cards.
        quickstart: Its Fashion-MNIST-LT quick start and benchmark recipe.
        describe: ``describe(flags)``: the loss column of the paper-recipe table from a recipe's flags.
    """
    name: str
    summary: str
    build: Callable[..., nn.Module]
    paper: Optional[Paper] = None
    aliases: Tuple[str, ...] = ()
    label: str = ''
    flags: Tuple[MethodFlag, ...] = ()
    smoothing: Optional[float] = 0.0
    views: Optional[str] = None
    num_views: Optional[int] = None
    view_forward: str = 'per-view'
    prior: str = 'none'
    class_counts: bool = False
    key_encoder: bool = False
    projector: bool = False
    second_stage: bool = False
    soft_targets: bool = False
    default: bool = False
    patches: Optional[Callable[[argparse.Namespace], bool]] = None
    check: Optional[Callable[[argparse.Namespace], None]] = None
    tags: Tuple[str, ...] = ()
    quickstart: Optional[Quickstart] = None
    describe: Optional[Callable[[Dict[str, Any]], str]] = None

    def __post_init__(self):
        if self.prior not in PRIORS:
            raise ValueError(f'prior must be one of {PRIORS}, got {self.prior!r}')
        if not self.label:
            object.__setattr__(self, 'label', self.name)

    @property
    def options(self) -> Tuple[str, ...]:
        """The keywords of its task builder besides the shared ones."""
        return _keywords(self.build)

    def uses_prior(self, logit_adjust: str, class_counts: Optional[Sequence[int]]) -> bool:
        """Whether the loss adds the class prior: always, never, or by ``logit_adjust`` (``auto``: when
        ``class_counts`` are long-tailed, ``max / min > LONG_TAIL_RATIO``)."""
        if logit_adjust not in LOGIT_ADJUST_MODES:
            raise ValueError(f'logit_adjust must be one of {LOGIT_ADJUST_MODES}, got {logit_adjust!r}')
        if self.prior != 'logit-adjust':
            return self.prior == 'always'
        if logit_adjust == 'on':
            if class_counts is None:
                raise ValueError(f'logit_adjust=on: {self.name} needs the training class counts, none were given')
            return True
        return logit_adjust == 'auto' and class_counts is not None and is_long_tailed(class_counts)

    def needs_class_counts(self, logit_adjust: str = 'auto') -> bool:
        """Whether training needs the class counts (its prior, or class weights)."""
        return self.class_counts or self.prior == 'always' or (self.prior == 'logit-adjust' and logit_adjust != 'off')

    def create_task(
            self,
            model: nn.Module,
            num_views: Optional[int] = None,
            class_counts: Optional[Sequence[int]] = None,
            logit_adjust: str = 'auto',
            prior_tau: float = 1.0,
            smoothing: Optional[float] = None,
            projector: Optional[Mapping[str, Any]] = None,
            classifier_retrain: Optional[str] = None,
            view_forward: Optional[str] = None,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
            **options,
    ) -> nn.Module:
        """The method's ``timm.task.TrainingTask`` around ``model`` (a timm classifier; the contrastive methods put
        their projector beside it); ``view_forward`` None: the method's. Shared settings are checked here,
        ``options`` by the method's builder (None keeps a default; another method's option is refused unless None);
        every error is a ValueError naming the argument."""
        self._check_arguments(num_views, smoothing, projector, classifier_retrain, options)
        plain = unwrap_model(model)
        num_classes = getattr(plain, 'backbone', plain).num_classes
        if class_counts is not None and len(class_counts) != num_classes:
            raise ValueError(f'class_counts: {len(class_counts)} counts for a model with num_classes={num_classes}')
        prior = self.uses_prior(logit_adjust, class_counts)
        if prior and class_counts is None:
            raise ValueError(f'class_counts: {self.name} needs the training class counts for its class prior')
        if not prior and prior_tau != 1.0:
            raise ValueError(f'prior_tau={prior_tau}: task {self.name} uses no class prior here'
                             + (' (logit adjustment is off or the class counts are not long-tailed)'
                                if self.prior == 'logit-adjust' else ''))
        context = TaskContext(
            model=model, num_classes=num_classes, num_views=num_views,
            class_counts=None if class_counts is None else [int(c) for c in class_counts], prior=prior,
            prior_tau=prior_tau, smoothing=smoothing, projector=given(**(projector or {})),
            classifier_retrain=classifier_retrain, view_forward=view_forward or self.view_forward, device=device,
            dtype=dtype, verbose=verbose)
        return self.build(context, **{k: v for k, v in options.items() if k in self.options})

    def _check_arguments(self, num_views, smoothing, projector, classifier_retrain, options) -> None:
        unknown = [k for k, v in options.items() if k not in self.options and v is not None]  # None: not given
        if unknown:
            taken = ', '.join(self.options) or 'none'
            raise ValueError(f'{unknown[0]}={options[unknown[0]]!r}: task {self.name} takes no {unknown[0]} '
                             f'(its own options: {taken})')
        if self.num_views is not None and num_views not in (None, self.num_views):
            raise ValueError(f'num_views: {self.name} takes {self.num_views} views per image, got {num_views}')
        if smoothing and self.smoothing is None:
            raise ValueError(f'smoothing={smoothing}: the {self.name} loss takes no label smoothing')
        if not self.projector and any(v is not None for v in (projector or {}).values()):
            raise ValueError(f'projector={dict(projector)}: task {self.name} trains no projector')
        if classifier_retrain is not None and not self.second_stage:
            raise ValueError(f'classifier_retrain={classifier_retrain!r}: task {self.name} does not train a '
                             f'second-stage classifier')

    def own_values(self, args: argparse.Namespace) -> Dict[str, Any]:
        """Its builder's options from train.py's flags (``flags`` with a keyword)."""
        return {flag.keyword: getattr(args, flag.dest) for flag in self.flags if flag.keyword}
