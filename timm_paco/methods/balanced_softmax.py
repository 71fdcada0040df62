"""Balanced Softmax (Ren et al., NeurIPS 2020): cross-entropy of ``logits + tau · log p_c``, the class prior
from the training counts."""
from timm_paco.losses import BalancedSoftmaxLoss

from ._classification import classification_task
from .method import Method, Paper, Quickstart, TaskContext
from .registry import register_method

__all__ = ['BALANCED_SOFTMAX']


def _build(context: TaskContext):
    criterion = BalancedSoftmaxLoss(context.num_classes, **context.prior_kwargs(tau_keyword='tau'),
                                    **context.smoothing_kwargs())
    return classification_task(context, criterion)


BALANCED_SOFTMAX = register_method(Method(
    name='balanced-softmax', summary='Balanced Softmax cross-entropy', label='Balanced Softmax', build=_build,
    paper=Paper('Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual Recognition", NeurIPS 2020',
                code='https://github.com/jiawei-ren/BalancedMetaSoftmax-Classification'),
    prior='always', second_stage=True, quickstart=Quickstart(model='resnet32_cifar')))
