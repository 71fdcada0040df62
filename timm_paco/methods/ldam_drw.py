"""LDAM-DRW (Cao et al., NeurIPS 2019): label-distribution-aware margins on a cosine classifier, classes
re-weighted by their effective number from ``--drw-epoch`` on (deferred re-weighting)."""
from timm_paco.arg_types import non_negative_int
from timm_paco.losses import LDAMLoss
from timm_paco.tasks import LDAMTask

from .class_balanced import CB_BETA
from .method import Method, MethodFlag, Paper, Quickstart, TaskContext, given
from .registry import register_method

__all__ = ['LDAM_DRW', 'DRW_EPOCH']

DRW_EPOCH = MethodFlag('--drw-epoch', 'drw_epoch', dict(
    type=non_negative_int, default=None, metavar='EPOCH',
    help='ldam-drw: the epoch from which the loss re-weights the classes (default: 80%% of --epochs)'),
    late_default=lambda args: int(0.8 * args.epochs))  # Cao et al.'s 160 of 200 epochs


def _build(context: TaskContext, cb_beta=None, drw_epoch=None):
    criterion = LDAMLoss(context.num_classes, context.counts('ldam-drw'), **given(beta=cb_beta))
    return LDAMTask(context.model, criterion, drw_epoch=drw_epoch, num_views=context.views(1), **context.common())


def _check(args) -> None:
    if args.drw_epoch is not None and args.drw_epoch >= args.epochs:
        raise ValueError(f'--drw-epoch {args.drw_epoch}: the run has --epochs {args.epochs} (epochs 0 to '
                         f'{args.epochs - 1}), so the classes would never be re-weighted; give an epoch below it')


LDAM_DRW = register_method(Method(
    name='ldam-drw', summary='LDAM loss with deferred re-weighting', label='LDAM-DRW', build=_build,
    paper=Paper('Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss", NeurIPS 2019',
                code='https://github.com/kaidic/LDAM-DRW'),
    flags=(CB_BETA, DRW_EPOCH), smoothing=None, class_counts=True, check=_check,
    quickstart=Quickstart(model='resnet32_cifar')))
