"""Cross-entropy, the baseline: timm's label smoothing 0.1, timm's single-view loader, mixup / timm's
classification losses (``--loss``) as in timm; per-class weights (timm's ``--loss-class-weight``) also on the softmax
CE, which timm refuses them for. timm's ``--task classification`` names it."""
from timm_paco.losses import CELoss

from ._classification import classification_task
from .method import Method, Quickstart, TaskContext
from .registry import register_method

__all__ = ['CE']


def _build(context: TaskContext, class_weight=None):
    criterion = CELoss(context.num_classes, class_weight=class_weight, **context.smoothing_kwargs())
    return classification_task(context, criterion)


CE = register_method(Method(
    name='ce', summary='cross-entropy', label='CE', build=_build, smoothing=0.1, second_stage=True,
    soft_targets=True, default=True, aliases=('classification',), quickstart=Quickstart(model='resnet32_cifar')))
