"""Class-balanced cross-entropy (Cui et al., CVPR 2019): class weights ``(1 - beta) / (1 - beta^n_c)`` from the
effective number of training samples."""
from timm_paco.arg_types import decay_rate
from timm_paco.losses import ClassBalancedLoss

from ._classification import classification_task
from .method import Method, MethodFlag, Paper, Quickstart, TaskContext, given
from .registry import register_method

__all__ = ['CLASS_BALANCED', 'CB_BETA']

CB_BETA = MethodFlag('--cb-beta', 'cb_beta', dict(
    type=decay_rate, default=None,
    help='class-balanced / ldam-drw: effective-number beta in [0, 1) of the class weights (default: 0.9999)'))


def _build(context: TaskContext, cb_beta=None):
    criterion = ClassBalancedLoss(context.num_classes, context.counts('class-balanced'), **given(beta=cb_beta))
    return classification_task(context, criterion)


CLASS_BALANCED = register_method(Method(
    name='class-balanced', summary='class-balanced cross-entropy (effective number of samples)',
    label='Class-balanced CE', build=_build,
    paper=Paper('Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019'),
    flags=(CB_BETA,), smoothing=None, class_counts=True, second_stage=True,
    quickstart=Quickstart(model='resnet32_cifar')))
