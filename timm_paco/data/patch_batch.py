"""A batch of PBSD samples (``patches.PatchViews``) and the loader pieces that carry it to the device.

``PatchBatch(views [V·B, C, H, W] view-major, patches [L·B, C, p, p] patch-major (row ``j·B + i`` is patch j of
image i), boxes [L, B, 4] float32 in query-view pixels)`` is what the DSCL task takes as ``input``; the target
stays ``[B]``.

With timm's prefetcher the patches ride through timm's ``PrefetchLoader`` in the target's place
(``PatchTarget``, which it moves with ``.to(device=..., non_blocking=True)``) and ``PatchPrefetchLoader``
normalises them there as the prefetcher did the views (without random erasing, which is the views' alone).
"""
from typing import NamedTuple, Optional

import torch
from torch.utils.data import default_collate

from .loader import ViewCollate

__all__ = ['PatchBatch', 'PatchTarget', 'PatchCollate', 'PatchPrefetchLoader']


class PatchBatch(NamedTuple):
    """The DSCL task's input with PBSD: views, patches and boxes (see the module docstring)."""
    views: torch.Tensor
    patches: torch.Tensor
    boxes: torch.Tensor

    def to(self, device=None, dtype: Optional[torch.dtype] = None, non_blocking: bool = False) -> 'PatchBatch':
        """Views and patches to ``device`` and ``dtype``; boxes to ``device`` in float32."""
        return PatchBatch(self.views.to(device=device, dtype=dtype, non_blocking=non_blocking),
                          self.patches.to(device=device, dtype=dtype, non_blocking=non_blocking),
                          self.boxes.to(device=device, non_blocking=non_blocking))

    def contiguous(self, memory_format=torch.contiguous_format) -> 'PatchBatch':
        return PatchBatch(self.views.contiguous(memory_format=memory_format),
                          self.patches.contiguous(memory_format=memory_format), self.boxes)


class PatchTarget(NamedTuple):
    """The target ``[B]`` with the uint8 patches and boxes, as timm's ``PrefetchLoader`` moves a target."""
    target: torch.Tensor
    patches: torch.Tensor
    boxes: torch.Tensor

    def to(self, device=None, non_blocking: bool = False) -> 'PatchTarget':
        return PatchTarget(*(t.to(device=device, non_blocking=non_blocking) for t in self))


class PatchCollate:
    """Collate ``(PatchViews, target)`` samples: ``(PatchBatch, target [B])``, or with ``use_prefetcher``
    ``(views uint8, PatchTarget)`` for timm's ``PrefetchLoader``."""

    def __init__(self, use_prefetcher: bool = False):
        self.use_prefetcher = use_prefetcher
        self.views = ViewCollate(use_prefetcher)

    def __call__(self, batch):
        views, target = self.views([(sample.views, label) for sample, label in batch])
        patches = torch.stack([sample.patches for sample, _ in batch], dim=1)  # [L, B, C, p, p]
        patches = patches.reshape(-1, *patches.shape[2:])
        boxes = default_collate([sample.boxes for sample, _ in batch]).transpose(0, 1).contiguous()
        if self.use_prefetcher:
            return views, PatchTarget(target, patches, boxes)
        return PatchBatch(views, patches, boxes), target


class PatchPrefetchLoader:
    """Wraps timm's ``PrefetchLoader`` over a ``PatchCollate(use_prefetcher=True)`` loader: yields
    ``(PatchBatch, target [B])`` on the device, the patches normalised with the prefetcher's mean and std."""

    def __init__(self, prefetcher):
        self.prefetcher = prefetcher

    def __iter__(self):
        mean, std, dtype = self.prefetcher.mean, self.prefetcher.std, self.prefetcher.img_dtype
        for views, carried in self.prefetcher:
            patches = carried.patches.to(dtype).sub_(mean).div_(std)
            yield PatchBatch(views, patches, carried.boxes), carried.target

    def __len__(self):
        return len(self.prefetcher)

    @property
    def sampler(self):
        return self.prefetcher.sampler

    @property
    def batch_sampler(self):
        return self.prefetcher.batch_sampler

    @property
    def dataset(self):
        return self.prefetcher.dataset

    @property
    def mixup_enabled(self):
        return False
