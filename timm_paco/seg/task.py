"""The segmentation training task (timm's ``TrainingTask``): CE on the logits upsampled to the labels, plus
``paco_weight`` times GPaCo's pixel PaCo loss on the decoder-size logits and the projector's embeddings.

``task(images [N, 3, H, W], labels [N, H, W])`` -> ``{'loss', 'loss_ce', 'loss_pixel_paco' (with a criterion),
'output'}`` (loss parts named ``loss_*`` as every task's); the trainable module is the whole ``PaCoSegModel``
(decoder, classifier and projector), the model ``forward`` switches on ``training``; ``create_evaluator`` gives the
mIoU evaluator (``SegMetrics``), so train.py's epoch loop trains and scores it. smp's decoders have no auxiliary
head, so GPaCo's 0.4-weighted auxiliary CE does not apply.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from timm.task import TrainingTask
from timm.utils import unwrap_model

from timm_paco.losses import PixelPaCoLoss
from timm_paco.seg.metrics import SegMetrics
from timm_paco.seg.model import PaCoSegModel

__all__ = ['SegmentationTask']


class SegmentationTask(TrainingTask):
    """``rare_classes``: the classes whose mean IoU the evaluator reports as ``miou_rare`` (None: not reported)."""

    def __init__(self, model: PaCoSegModel, criterion: Optional[PixelPaCoLoss] = None, paco_weight: float = 1.0,
                 ignore_index: int = 255, rare_classes: Optional[Sequence[int]] = None, device=None, dtype=None):
        super().__init__(device=device, dtype=dtype)
        if criterion is not None and model.projector is None:
            raise ValueError('the pixel PaCo loss needs the model\'s projector (--proj-dim > 0)')
        self.trainable_module = model
        self.criterion = criterion
        self.paco_weight = float(paco_weight)
        self.ignore_index = ignore_index
        self.rare_classes = list(rare_classes) if rare_classes else None

    def prepare_distributed(self, device_ids=None, **ddp_kwargs) -> 'SegmentationTask':
        from torch.nn.parallel import DistributedDataParallel
        self.trainable_module = DistributedDataParallel(self.trainable_module, device_ids=device_ids, **ddp_kwargs)
        return self

    def get_eval_model(self, module=None, ema: bool = False):
        return unwrap_model(module if module is not None else self.get_trainable_module(ema=ema))

    def create_evaluator(self, **kwargs) -> SegMetrics:
        """A fresh mIoU evaluator of the eval model's logits (at the input size) against the label maps; timm's
        ``max_samples`` does not apply (each rank scores its own share of the images, no padding)."""
        num_classes = unwrap_model(self.get_trainable_module()).num_classes
        return SegMetrics(num_classes, self.ignore_index, self.device, self.rare_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits, embed = self.trainable_module(images)
        if labels.ndim != 3 or labels.shape[0] != logits.shape[0]:
            raise ValueError(f'labels must be [N, H, W] with N = {logits.shape[0]} (the images), got '
                             f'{list(labels.shape)}')
        upsampled = F.interpolate(logits, size=labels.shape[-2:], mode='bilinear', align_corners=False)
        labelled = (labels != self.ignore_index).sum().clamp_min(1)  # a batch without labels gives 0, not NaN
        ce = F.cross_entropy(upsampled.float(), labels, ignore_index=self.ignore_index, reduction='sum') / labelled
        result = dict(loss=ce, loss_ce=ce.detach(), output=upsampled.detach())
        if self.criterion is not None:
            paco = self.criterion(embed, logits, labels)
            result.update(loss=ce + self.paco_weight * paco, loss_pixel_paco=paco.detach())
        return result
