"""The task of a loss on the logits alone (the CE family): V-view classification, or with ``classifier_retrain``
the second stage that trains only the classifier of a stage-1 model."""
import torch.nn as nn

from timm_paco.tasks import ClassifierRetrainTask, MultiViewClassificationTask

from .method import TaskContext

__all__ = ['classification_task']


def classification_task(context: TaskContext, criterion: nn.Module) -> nn.Module:
    """``MultiViewClassificationTask`` (one view unless ``num_views``), or ``ClassifierRetrainTask`` in the
    ``classifier_retrain`` mode (``crt`` / ``lws``)."""
    if context.classifier_retrain is not None:
        return ClassifierRetrainTask(context.model, criterion, mode=context.classifier_retrain,
                                     num_views=context.views(1), **context.common())
    return MultiViewClassificationTask(context.model, criterion, num_views=context.views(1), **context.common())
