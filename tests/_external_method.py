"""A training method defined outside timm_paco, as a user writes one: a module that registers it. The tests import it
by name (train.py ``--method-modules _external_method``); nothing in timm_paco names it.

``ext-scaled-ce``: cross-entropy of the logits times a learnt-free scale ``--ext-logit-scale`` (a flag of its own),
one view, with a label smoothing default of its own.
"""
import torch.nn as nn
import torch.nn.functional as F

from timm_paco.methods import Method, MethodFlag, Paper, Quickstart, register_method
from timm_paco.tasks import MultiViewClassificationTask

LOGIT_SCALE = MethodFlag('--ext-logit-scale', 'logit_scale', dict(
    type=float, default=None, help='ext-scaled-ce: factor on the logits before the softmax (default: 2)'))


class ScaledCrossEntropy(nn.Module):
    """``loss(logits [A, C], features, labels [A])``: CE of ``scale · logits`` (the timm_paco loss call)."""

    def __init__(self, scale: float = 2.0, label_smoothing: float = 0.0):
        super().__init__()
        self.scale, self.label_smoothing = scale, label_smoothing

    def forward(self, logits, features, labels, queue_features=None, queue_labels=None):
        return F.cross_entropy(self.scale * logits.float(), labels, label_smoothing=self.label_smoothing)


def _build(context, logit_scale=None):
    criterion = ScaledCrossEntropy(2.0 if logit_scale is None else logit_scale, context.smoothing or 0.0)
    return MultiViewClassificationTask(context.model, criterion, num_views=context.views(1), **context.common())


EXT = register_method(Method(
    name='ext-scaled-ce', summary='scaled cross-entropy (an external test method)', label='Scaled CE',
    build=_build, paper=Paper('Nobody et al., "A Method Outside The Package", tests 2026'),
    flags=(LOGIT_SCALE,), smoothing=0.05, quickstart=Quickstart(model='resnet32_cifar')))
