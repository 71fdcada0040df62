"""Focal loss (Lin et al., ICCV 2017): ``-(1 - p_y)^gamma log p_y``."""
from timm_paco.arg_types import non_negative_float
from timm_paco.losses import FocalLoss

from ._classification import classification_task
from .method import Method, MethodFlag, Paper, Quickstart, TaskContext, given
from .registry import register_method

__all__ = ['FOCAL', 'FOCAL_GAMMA']

FOCAL_GAMMA = MethodFlag('--focal-gamma', 'focal_gamma', dict(
    type=non_negative_float, default=None, help='focal: focusing exponent gamma (default: 1; 0 = cross-entropy)'))


def _build(context: TaskContext, focal_gamma=None):
    return classification_task(context, FocalLoss(context.num_classes, **given(gamma=focal_gamma)))


FOCAL = register_method(Method(
    name='focal', summary='focal loss', label='Focal', build=_build,
    paper=Paper('Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017'),
    flags=(FOCAL_GAMMA,), smoothing=None, second_stage=True, quickstart=Quickstart(model='resnet32_cifar')))
