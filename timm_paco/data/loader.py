"""A training / eval loader for multi-view transforms, built from timm's loader pieces.

timm's ``create_loader`` always replaces ``dataset.transform`` with its own single-view ``create_transform``,
so it cannot carry a multi-view transform. ``create_view_loader`` sets the given transform instead and reuses
the rest of timm: ``fast_collate`` / ``default_collate``, ``PrefetchLoader`` (device transfer, normalisation,
random erasing), ``OrderedDistributedSampler``, ``MultiEpochsDataLoader`` and timm's worker seeding.

Every batch it yields is ``(input [V·B, C, H, W] view-major, target [B])`` (see ``views.stack_views``); with
PBSD's ``patches.PatchViewTransform``, ``(patch_batch.PatchBatch, target [B])``.
"""
from functools import partial
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.utils.data
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.distributed_sampler import OrderedDistributedSampler
from timm.data.loader import MultiEpochsDataLoader, PrefetchLoader, _worker_init, fast_collate
from torch.utils.data import default_collate

from .patches import PatchViewTransform
from .views import stack_views

__all__ = ['ViewCollate', 'create_view_loader']


class ViewCollate:
    """Collate samples ``(tuple of V views | one view, target)`` into ``(input [V·B, ...], target [B])``.

    ``use_prefetcher=True`` collates uint8 views with timm's ``fast_collate``; otherwise ``default_collate``.
    """

    def __init__(self, use_prefetcher: bool = False):
        self.use_prefetcher = use_prefetcher

    def __call__(self, batch):
        first = batch[0][0]
        num_views = len(first) if isinstance(first, (tuple, list)) else 1
        if self.use_prefetcher:
            view = first[0] if isinstance(first, (tuple, list)) else first
            if getattr(view, 'dtype', None) not in (torch.uint8, np.uint8):
                raise ValueError(
                    f'view_transform: the prefetcher path collates uint8 images, got {type(view).__name__} of '
                    f'dtype {getattr(view, "dtype", None)}; build it with use_prefetcher=True')
            if isinstance(first, list):
                batch = [(tuple(views), target) for views, target in batch]
            input, target = fast_collate(batch)
        else:
            view = first[0] if isinstance(first, (tuple, list)) else first
            if getattr(view, 'dtype', None) in (torch.uint8, np.uint8):
                raise ValueError(
                    'view_transform: uint8 images reach a loader without the prefetcher, which would neither '
                    'scale nor normalise them; build the transform with use_prefetcher=False')
            input, target = default_collate(batch)
        return stack_views(input, target, num_views)


def _set_transform(dataset, transform):
    """Set ``transform`` on ``dataset``, or on the base of a plain ``Subset`` (which has no transform)."""
    while isinstance(dataset, torch.utils.data.Subset) and not hasattr(type(dataset), 'transform'):
        dataset = dataset.dataset
    dataset.transform = transform


def _distributed_sampler(dataset, is_training: bool):
    """timm's choice: a shuffling ``DistributedSampler`` for training, ``OrderedDistributedSampler`` for eval."""
    if is_training:
        return torch.utils.data.distributed.DistributedSampler(dataset)
    return OrderedDistributedSampler(dataset)


def create_view_loader(
        dataset: torch.utils.data.Dataset,
        view_transform: Optional[Callable],
        batch_size: int,
        is_training: bool = True,
        use_prefetcher: bool = True,
        mean: Tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
        std: Tuple[float, ...] = IMAGENET_DEFAULT_STD,
        channels: Optional[int] = None,
        device: Optional[torch.device] = None,
        img_dtype: torch.dtype = torch.float32,
        re_prob: float = 0.,
        re_mode: str = 'const',
        re_count: int = 1,
        re_num_splits: int = 0,
        distributed: bool = False,
        num_workers: int = 1,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        worker_seeding: str = 'all',
        drop_last: Optional[bool] = None,
        use_multi_epochs_loader: bool = False,
        sampler: Optional[torch.utils.data.Sampler] = None,
):
    """Create a loader that yields view-major batches ``(input [V·B, C, H, W], target [B])``.

    Args:
        dataset: Map-style dataset returning ``(PIL image, target)`` before the transform; its ``transform``
            (a plain ``Subset``'s base dataset's) is set to ``view_transform``.
        view_transform: ``views.create_view_transform(..., use_prefetcher=use_prefetcher)`` (or any transform
            returning one tensor or a tuple of V tensors, or a ``PatchViewTransform``); ``None`` keeps the
            dataset's transform.
        batch_size: Images (not views) per batch, per process.
        is_training: Shuffle (or ``DistributedSampler``), drop the last partial batch, random erasing on device.
        use_prefetcher: Collate uint8 with ``fast_collate``; ``PrefetchLoader`` moves to ``device`` and
            normalises with ``mean`` / ``std`` (the transform must then output uint8).
        channels: Image channels for the prefetcher's normalisation; defaults to ``len(mean)``.
        device: Prefetcher device; defaults to CUDA when available, else CPU.
        re_prob, re_mode, re_count, re_num_splits: Random erasing in the prefetcher (training only).
        distributed: ``DistributedSampler`` when training, timm's ``OrderedDistributedSampler`` otherwise.
        num_workers, pin_memory, persistent_workers, worker_seeding: As in timm's ``create_loader``.
        drop_last: Defaults to ``is_training``.
        use_multi_epochs_loader: timm's ``MultiEpochsDataLoader``.
        sampler: Draws the indices (a ``samplers.ClassAwareSampler``, which shares them out over the ranks itself)
            instead of a shuffle or the distributed samplers.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size: expected >= 1, got {batch_size}')
    if re_prob > 0 and is_training and not use_prefetcher:
        raise ValueError(f're_prob={re_prob}: the loader erases only with the prefetcher; without it random erasing '
                         f'belongs in the view transform (create_view_transform(re_prob=...))')
    if isinstance(dataset, torch.utils.data.IterableDataset):
        raise ValueError('dataset: create_view_loader needs a map-style dataset (an IterableDataset was given)')
    if view_transform is not None:
        _set_transform(dataset, view_transform)

    from .patch_batch import PatchCollate, PatchPrefetchLoader  # it builds on ViewCollate
    with_patches = isinstance(view_transform, PatchViewTransform)
    if sampler is None and distributed:
        sampler = _distributed_sampler(dataset, is_training)
    loader_class = MultiEpochsDataLoader if use_multi_epochs_loader else torch.utils.data.DataLoader
    loader = loader_class(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None and is_training,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=(PatchCollate if with_patches else ViewCollate)(use_prefetcher),
        pin_memory=pin_memory,
        drop_last=is_training if drop_last is None else drop_last,
        worker_init_fn=partial(_worker_init, worker_seeding=worker_seeding),
        persistent_workers=persistent_workers and num_workers > 0,
    )
    if use_prefetcher:
        if device is None:
            device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        loader = PrefetchLoader(
            loader,
            mean=mean,
            std=std,
            channels=channels or len(mean),
            device=torch.device(device),
            img_dtype=img_dtype,
            re_prob=re_prob if is_training else 0.,
            re_mode=re_mode,
            re_count=re_count,
            re_num_splits=re_num_splits,
        )
        if with_patches:
            loader = PatchPrefetchLoader(loader)
    return loader
