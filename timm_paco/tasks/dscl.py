"""DSCL (Xuan & Zhang, AAAI 2024): PaCo's MoCo skeleton with the DSCL loss, plus PBSD's patch self-distillation.

The same query model (the timm model and the task's projector), momentum key encoder and labelled queue as
``PaCoTask``, two views per image (query, key), and the same layout of the loss call: anchors are the queries;
row i of the contrast bank is anchor i's own key, then the other keys and the queue. The loss has no class
centres (``timm_paco.losses.DSCLLoss``), so the classifier is not trained here (it is frozen at its
initialisation: the paper's stage 2 retrains it on the frozen representation). Under DDP every rank computes
the loss of the gathered global batch.

PBSD (``pbsd_weight`` λ > 0) takes ``input`` as ``timm_paco.data.PatchBatch`` (views, L patches and L boxes per
image): the query model gives each box's teacher embedding (RoIAlign on the query's last feature map, no
gradient) and each patch's student embedding in the same call (one encoder forward per patch group of B, as
the authors' code does, or all L·B patches in one with ``view_forward='joint'``); ``timm_paco.losses.PBSDLoss`` scores both
against the image's own key and the queue as it was before this batch is enqueued. Each rank distils its own
images; DDP's gradient average is then the global batch's. Total: ``L_dscl + λ · L_pbsd``.
"""
from typing import Dict, Optional, Union

import torch

from timm_paco.data.patch_batch import PatchBatch
from timm_paco.losses import PBSDLoss
from timm_paco.losses._checks import check_real
from .paco import PaCoTask
from .patch_teacher import check_patch_model

__all__ = ['DSCLTask', 'PBSD_WEIGHT']

PBSD_WEIGHT = 1.5  # the paper's λ


class DSCLTask(PaCoTask):
    """Returns ``{'loss', 'output' (query logits [B, C] of the frozen classifier), 'loss_contrast'}`` and, with
    PBSD, ``'loss_pbsd'`` (unweighted). Arguments as ``PaCoTask`` (criterion: ``DSCLLoss``; queue 8192, momentum
    0.999 by default), and ``pbsd_weight`` λ (1.5; 0 turns PBSD off and takes plain view-major tensors)."""

    task_name = 'dscl'

    def __init__(self, model, criterion, *args, pbsd_weight: float = PBSD_WEIGHT, **kwargs):
        super().__init__(model, criterion, *args, **kwargs)
        self.pbsd_weight = check_real('pbsd_weight', pbsd_weight)
        if self.pbsd_weight < 0:
            raise ValueError(f'pbsd_weight must be >= 0 (0 turns PBSD off), got {pbsd_weight}')
        self.pbsd = PBSDLoss(temperature=criterion.temperature) if self.pbsd_weight > 0 else None
        if self.pbsd is not None:
            check_patch_model(self.model)
        self.model.get_classifier().requires_grad_(False)

    def forward(self, input: Union[torch.Tensor, PatchBatch], target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``input [2·B, C, H, W]`` (query views, then key views), or with PBSD a ``PatchBatch``; ``target [B]``."""
        if self.pbsd is None:
            if isinstance(input, PatchBatch):
                raise ValueError('input: a PatchBatch reached a dscl task with pbsd_weight=0; give view-major '
                                 'tensors [2·B, C, H, W]')
            return super().forward(input, target)
        if not isinstance(input, PatchBatch):
            raise ValueError(f'input: dscl with PBSD (pbsd_weight={self.pbsd_weight}) takes a PatchBatch (views, '
                             f'patches, boxes), got {type(input).__name__}; use pbsd_weight=0 for views alone')
        batch_size = self.batch_size(input.views, target)
        self._check_patches(input, batch_size)
        logits, queries, teacher, student = self.trainable_module(
            input.views[:batch_size], input.patches, input.boxes, joint_patches=self.view_forward == 'joint')
        keys = self._keys(input.views[batch_size:])
        queue_features, queue_labels = self.queue.get()
        result = self.contrast(logits, queries, keys, target, queue_features, queue_labels)
        pbsd = self.pbsd(teacher, student, keys.to(student.dtype), queue_features.to(student.dtype))
        result['loss'] = result['loss'] + self.pbsd_weight * pbsd
        result['loss_pbsd'] = pbsd
        return result

    @staticmethod
    def _check_patches(input: PatchBatch, batch_size: int) -> None:
        boxes, patches = input.boxes, input.patches
        if boxes.ndim != 3 or boxes.shape[1:] != (batch_size, 4) or boxes.shape[0] < 1:
            raise ValueError(f'boxes must have shape [L, B={batch_size}, 4], got {list(boxes.shape)}')
        if patches.ndim != 4 or patches.shape[0] != boxes.shape[0] * batch_size:
            raise ValueError(f'patches must have shape [L·B = {boxes.shape[0] * batch_size}, C, p, p], got '
                             f'{list(patches.shape)}')

    def extra_repr(self) -> str:
        return f'pbsd_weight={self.pbsd_weight}'
