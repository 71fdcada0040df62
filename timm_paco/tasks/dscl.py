"""DSCL stage 1 (Xuan & Zhang, AAAI 2024): PaCo's MoCo skeleton with the DSCL loss.

The same query model (the timm model and the task's projector), momentum key encoder and labelled queue as
``PaCoTask``, two views per image (query, key), and the same layout of the loss call: anchors are the queries;
row i of the contrast bank is anchor i's own key, then the other keys and the queue. The loss has no class
centres (``timm_paco.losses.DSCLLoss``), so the classifier is not trained here: the paper's stage 2 retrains it
on the frozen representation. Under DDP every rank computes the loss of the gathered global batch.
"""
from .paco import PaCoTask

__all__ = ['DSCLTask']


class DSCLTask(PaCoTask):
    """Returns ``{'loss', 'output' (query logits [B, C], of the untrained classifier), 'loss_contrast'}``;
    arguments as ``PaCoTask`` (criterion: ``DSCLLoss``; queue 8192, momentum 0.999 by default)."""

    task_name = 'dscl'
