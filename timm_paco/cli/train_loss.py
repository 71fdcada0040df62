"""timm 1.0.31's loss flags in train.py: ``--loss`` (``--bce-loss`` / ``--jsd-loss`` are its ``bce`` / ``jsd``), the
class statistics file ``--class-stats`` and the class weights ``--loss-class-weight`` / ``--loss-weight-power``,
read with timm's own ``timm.loss`` helpers. Unlike timm, class weights also weigh the softmax cross-entropy of a
method whose task builder takes ``class_weight`` (``--task ce``)."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from timm.loss import create_classification_loss, load_class_stats, resolve_class_weights

from timm_paco.cli.train_args import MULTI_LABEL_ONLY, TIMM_VIEWS
from timm_paco.cli.usage import UsageError
from timm_paco.methods import Method, get_method, list_methods

__all__ = ['resolve_loss', 'check_loss_flags', 'read_class_stats', 'loss_class_weight', 'timm_criterion',
           'replaces_loss']

_WEIGHT_METHODS = ('inv_freq', 'effective_num')  # the --loss-class-weight names computed from the class counts


def resolve_loss(args) -> Optional[str]:
    """The run's ``--loss``: ``--bce-loss`` / ``--jsd-loss`` are ``bce`` / ``jsd`` (another ``--loss`` with them is
    refused); the multi-label losses, and the loss options without their loss, are refused."""
    loss = args.loss
    for dest, alias in (('bce_loss', 'bce'), ('jsd_loss', 'jsd')):
        if getattr(args, dest):
            flag = '--' + dest.replace('_', '-')
            if loss not in (None, alias):
                raise UsageError(f'{flag} means --loss {alias}; it does not combine with --loss {loss}: drop one')
            loss = alias
    if loss in MULTI_LABEL_ONLY:
        raise UsageError(f'--loss {loss}: a multi-label loss (timm\'s --task multilabel); timm_paco trains '
                         f'single-label classes: use --loss ce / bce / asl / poly')
    if args.poly_epsilon != 2.0 and loss != 'poly':
        raise UsageError(f'--poly-epsilon {args.poly_epsilon}: it sets the Poly-1 loss; add --loss poly')
    if args.loss_weight_power != 1.0 and (args.loss_class_weight or '').strip() != 'inv_freq':
        raise UsageError(f'--loss-weight-power {args.loss_weight_power}: it is the exponent of --loss-class-weight '
                         f'inv_freq; add that or drop it')
    return loss


def replaces_loss(args) -> bool:
    """Whether timm's classification loss replaces the method's (``--loss`` other than ce)."""
    return args.loss not in (None, 'ce')


def check_loss_flags(args, method: Method, timm_views: bool, num_views: int, mixup: bool) -> None:
    """UsageError for ``--loss`` / ``--loss-class-weight`` with a method or views they cannot apply to, naming
    both flags."""
    task = method.name
    if replaces_loss(args) and (not method.soft_targets or not timm_views):
        owners = ' / '.join(n for n in list_methods() if get_method(n).soft_targets)
        raise UsageError(f'--loss {args.loss} replaces the loss of --task {owners} with timm\'s, on timm\'s single '
                         f'view (--paco-views {TIMM_VIEWS}); got --task {task} with {num_views} view(s)')
    if not args.loss_class_weight:
        return
    weighted = [n for n in list_methods() if 'class_weight' in get_method(n).options]
    if replaces_loss(args) and args.loss != 'bce':
        raise UsageError(f'--loss-class-weight: timm weighs the classes of --loss bce, not of --loss {args.loss}')
    if not replaces_loss(args) and ('class_weight' not in method.options or mixup):
        reason = f'--task {task} has its own loss' if 'class_weight' not in method.options else \
            '--mixup / --cutmix train timm\'s soft-target loss'
        raise UsageError(f'--loss-class-weight weighs the cross-entropy of --task {" / ".join(weighted)} (or '
                         f'--loss bce); {reason}')


def read_class_stats(path: str, num_classes: Optional[int]) -> List[int]:
    """The training class counts of timm's class statistics JSON (``pos_counts``, ``num_samples``); UsageError
    naming ``--class-stats`` when it cannot be read or does not fit the classes."""
    try:
        counts, num_samples = load_class_stats(path)
    except (OSError, ValueError) as e:
        raise UsageError(f'--class-stats {path}: {e}') from None
    if num_classes is not None and counts.numel() != num_classes:
        raise UsageError(f'--class-stats {path}: {counts.numel()} class counts, but the model has {num_classes} '
                         f'classes')
    if not torch.equal(counts, counts.round()) or int(counts.sum()) != num_samples:
        raise UsageError(f'--class-stats {path}: single-label class counts are whole numbers summing to num_samples '
                         f'({num_samples}); these are not (multi-label statistics?)')
    return [int(n) for n in counts.tolist()]


def loss_class_weight(args, class_counts: Optional[Sequence[int]]) -> Optional[torch.Tensor]:
    """``--loss-class-weight`` as ``[C]`` float32 weights (None without it): inv_freq / effective_num from the
    class counts (timm's ``compute_class_weights``, mean 1), or the explicit weights (timm's forms)."""
    value = args.loss_class_weight
    if not value:
        return None
    stats = None
    if value.strip() in _WEIGHT_METHODS:
        if class_counts is None:
            raise UsageError(f'--loss-class-weight {value}: needs the training class counts; the dataset has no '
                             f'readable labels, so give them with --class-stats FILE')
        stats = (torch.tensor(class_counts, dtype=torch.float32), int(sum(class_counts)))
    try:
        weight = resolve_class_weights(value, 'class_weight', stats, power=args.loss_weight_power)
    except (OSError, ValueError) as e:
        raise UsageError(f'--loss-class-weight {value}: {e}') from None
    weight = torch.full((args.num_classes,), float(weight)) if isinstance(weight, float) else weight
    if weight.numel() != args.num_classes:
        raise UsageError(f'--loss-class-weight {value}: {weight.numel()} weights, but the model has '
                         f'{args.num_classes} classes')
    return weight


def timm_criterion(args, soft_targets: bool, class_weight: Optional[torch.Tensor]) -> nn.Module:
    """timm's classification loss of ``--loss`` (ce: its soft-target CE under ``--mixup`` / ``--cutmix``)."""
    bce = dict(pos_weight=args.bce_pos_weight, bce_target_thresh=args.bce_target_thresh, bce_sum=args.bce_sum)
    return create_classification_loss(
        loss_type=args.loss, smoothing=args.smoothing, soft_targets=soft_targets, class_weight=class_weight,
        poly_epsilon=args.poly_epsilon, **(bce if args.loss == 'bce' else {}))
