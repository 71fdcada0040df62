"""Cross-entropy, the baseline: timm's label smoothing 0.1, timm's single-view loader, mixup / BCE as in timm."""
from timm_paco.losses import CELoss

from ._classification import classification_task
from .method import Method, Quickstart, TaskContext
from .registry import register_method

__all__ = ['CE']


def _build(context: TaskContext):
    return classification_task(context, CELoss(context.num_classes, **context.smoothing_kwargs()))


CE = register_method(Method(
    name='ce', summary='cross-entropy', label='CE', build=_build, smoothing=0.1, second_stage=True,
    soft_targets=True, default=True, quickstart=Quickstart(model='resnet32_cifar')))
