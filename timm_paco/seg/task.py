"""The segmentation training task (timm's ``TrainingTask``): CE on the logits upsampled to the labels, plus
``paco_weight`` times GPaCo's pixel PaCo loss on the decoder-size logits and the projector's embeddings.

``task(images [N, 3, H, W], labels [N, H, W])`` -> ``{'loss', 'ce', 'pixel_paco' (with a criterion), 'output'}``;
the trainable module is the whole ``PaCoSegModel`` (decoder, classifier and projector), the model ``forward``
switches on ``training``. smp's decoders have no auxiliary head, so GPaCo's 0.4-weighted auxiliary CE does not
apply.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from timm.task import TrainingTask
from timm.utils import unwrap_model

from timm_paco.losses import PixelPaCoLoss
from timm_paco.seg.model import PaCoSegModel

__all__ = ['SegmentationTask']


class SegmentationTask(TrainingTask):
    def __init__(self, model: PaCoSegModel, criterion: Optional[PixelPaCoLoss] = None, paco_weight: float = 1.0,
                 ignore_index: int = 255, device=None, dtype=None):
        super().__init__(device=device, dtype=dtype)
        if criterion is not None and model.projector is None:
            raise ValueError('the pixel PaCo loss needs the model\'s projector (--proj-dim > 0)')
        self.trainable_module = model
        self.criterion = criterion
        self.paco_weight = float(paco_weight)
        self.ignore_index = ignore_index

    def prepare_distributed(self, device_ids=None, **ddp_kwargs) -> 'SegmentationTask':
        from torch.nn.parallel import DistributedDataParallel
        self.trainable_module = DistributedDataParallel(self.trainable_module, device_ids=device_ids, **ddp_kwargs)
        return self

    def get_eval_model(self, module=None, ema: bool = False):
        return unwrap_model(module if module is not None else self.get_trainable_module(ema=ema))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits, embed = self.trainable_module(images)
        if labels.ndim != 3 or labels.shape[0] != logits.shape[0]:
            raise ValueError(f'labels must be [N, H, W] with N = {logits.shape[0]} (the images), got '
                             f'{list(labels.shape)}')
        upsampled = F.interpolate(logits, size=labels.shape[-2:], mode='bilinear', align_corners=False)
        labelled = (labels != self.ignore_index).sum().clamp_min(1)  # a batch without labels gives 0, not NaN
        ce = F.cross_entropy(upsampled.float(), labels, ignore_index=self.ignore_index, reduction='sum') / labelled
        result = dict(loss=ce, ce=ce.detach(), output=upsampled.detach())
        if self.criterion is not None:
            paco = self.criterion(embed, logits, labels)
            result.update(loss=ce + self.paco_weight * paco, pixel_paco=paco.detach())
        return result
