"""PBSD's views (DSCL, Xuan & Zhang, AAAI 2024): the query and key views plus L boxes and L patch crops per image.

The query view's geometry (timm's RandomResizedCrop and flip) is applied first; on that image ``base`` the boxes
are drawn with RandomResizedCrop's parameter sampler (area ``scale`` of ``base``, aspect ``ratio``), before the
query's colour augmentation. Each box is cropped from ``base``, resized to ``patch_size`` and re-augmented (flip,
colour jitter p 0.8, grayscale p 0.2, blur p 0.5) as the student's input. So a box follows the query's flip, and
its coordinates are pixels of the query view the model sees: ``(x1, y1, x2, y2)``, ``0 <= x1 < x2 <= W``.

A sample is ``PatchViews(views=(query, key), patches [L, C, p, p], boxes [L, 4] float32)``; the views and patches
are uint8 for timm's prefetcher (it normalises on the device), else normalised floats.
"""
from typing import Callable, List, NamedTuple, Sequence, Tuple

import torch
import torchvision.transforms.functional as TF
from timm.data.transforms import str_to_interp_mode
from timm.data.transforms_factory import transforms_imagenet_train
from torchvision.transforms import Compose, RandomResizedCrop

__all__ = ['PatchViews', 'PatchBoxSampler', 'PatchViewTransform', 'create_student_transform', 'check_patch_args',
           'create_patch_view_transform']

STUDENT_COLOR_JITTER = (0.4, 0.4, 0.4, 0.1)  # MoCo v2's, applied with p 0.8


class PatchViews(NamedTuple):
    """One image's PBSD sample: ``views`` (query, key) ``[C, H, W]``, ``patches [L, C, p, p]``, ``boxes [L, 4]``."""
    views: Tuple[torch.Tensor, ...]
    patches: torch.Tensor
    boxes: torch.Tensor


def check_patch_args(num_patches: int, patch_size: int, scale: Sequence[float]) -> None:
    """ValueError naming the flag when L < 1, the patch size < 1 or the area range is not in (0, 1]."""
    if isinstance(num_patches, bool) or not isinstance(num_patches, int) or num_patches < 1:
        raise ValueError(f'--pbsd-patches must be an int >= 1 (patches per image), got {num_patches!r}')
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f'--pbsd-patch-size must be an int >= 1 (pixels), got {patch_size!r}')
    low, high = (tuple(scale) + (None, None))[:2] if len(tuple(scale)) == 2 else (None, None)
    if low is None or not 0 < low <= high <= 1:
        raise ValueError(f'--pbsd-scale must be two area fractions 0 < MIN <= MAX <= 1, got {list(scale)}')


class PatchBoxSampler:
    """L boxes on an image with RandomResizedCrop's parameter sampler: ``img -> boxes [L, 4]`` float32,
    ``(x1, y1, x2, y2)`` in its pixels."""

    def __init__(self, num_patches: int = 5, scale: Tuple[float, float] = (0.05, 0.6),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3)):
        self.num_patches = num_patches
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)

    def __call__(self, img) -> torch.Tensor:
        boxes = []
        for _ in range(self.num_patches):
            top, left, height, width = RandomResizedCrop.get_params(img, list(self.scale), list(self.ratio))
            boxes.append((left, top, left + width, top + height))
        return torch.tensor(boxes, dtype=torch.float32)


def create_student_transform(patch_size: int, mean, std, use_prefetcher: bool,
                             interpolation: str = 'bilinear') -> Callable:
    """The student's re-augmentation of a ``patch_size`` crop, from timm's train transform (its crop is the whole
    patch): flip, colour jitter p 0.8, grayscale p 0.2, Gaussian blur p 0.5, then to tensor."""
    return transforms_imagenet_train(
        img_size=patch_size, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.5, color_jitter=STUDENT_COLOR_JITTER,
        color_jitter_prob=0.8, grayscale_prob=0.2, gaussian_blur_prob=0.5 if patch_size >= 12 else 0.0,
        interpolation=interpolation, mean=mean, std=std, use_prefetcher=use_prefetcher)


class PatchViewTransform:
    """``img -> PatchViews``: the query view (``geometry`` then ``appearance``), the key view, and the patches.

    Args:
        geometry: The query's crop and flip (timm's ``primary`` transforms), PIL -> PIL.
        appearance: The query's colour augmentation and tensor conversion (``secondary`` + ``final``).
        key: The key view's whole transform.
        sampler: Draws the boxes on the query's ``geometry`` output.
        student: Re-augments each ``patch_size`` crop (``create_student_transform``).
        patch_size: The side of the student's input crops, in pixels.
    """

    def __init__(self, geometry: Callable, appearance: Callable, key: Callable, sampler: PatchBoxSampler,
                 student: Callable, patch_size: int = 64, interpolation: str = 'bilinear'):
        self.geometry, self.appearance, self.key = geometry, appearance, key
        self.sampler, self.student = sampler, student
        self.patch_size = patch_size
        # the crop's resize takes one mode; timm's 'random' (bilinear or bicubic per image) resizes bilinearly
        self.interpolation = str_to_interp_mode('bilinear' if interpolation == 'random' else interpolation)

    @property
    def num_views(self) -> int:
        return 2

    def __call__(self, img) -> PatchViews:
        base = self.geometry(img)
        boxes = self.sampler(base)
        size = [self.patch_size, self.patch_size]
        patches = [self.student(TF.resized_crop(base, int(y1), int(x1), int(y2 - y1), int(x2 - x1), size,
                                                self.interpolation, antialias=True))
                   for x1, y1, x2, y2 in boxes.tolist()]
        patches = torch.stack([torch.as_tensor(p) for p in patches])
        return PatchViews((torch.as_tensor(self.appearance(base)), torch.as_tensor(self.key(img))), patches, boxes)

    def __repr__(self):
        return (f'{type(self).__name__}(\n  query geometry: {self.geometry}\n  query appearance: {self.appearance}\n'
                f'  key: {self.key}\n  boxes: {self.sampler.num_patches} at area {self.sampler.scale}, '
                f'aspect {self.sampler.ratio}\n  student ({self.patch_size} px): {self.student}\n)')


def create_patch_view_transform(
        view_parts: List[Tuple[Callable, Callable, Callable]],
        num_patches: int = 5,
        patch_size: int = 64,
        scale: Tuple[float, float] = (0.05, 0.6),
        mean: Tuple[float, ...] = (0.485, 0.456, 0.406),
        std: Tuple[float, ...] = (0.229, 0.224, 0.225),
        use_prefetcher: bool = False,
        interpolation: str = 'bilinear',
) -> PatchViewTransform:
    """PBSD's transform from the two views' ``(geometry, appearance, final)`` triples
    (``create_view_transform(..., separate=True)``): view 0 the query, view 1 the key."""
    check_patch_args(num_patches, patch_size, scale)
    if len(view_parts) != 2:
        raise ValueError(f'--paco-views: PBSD takes two views (query, key), got {len(view_parts)}')
    (geometry, appearance, final), key = view_parts[0], Compose([t for part in view_parts[1] for t in part.transforms])
    return PatchViewTransform(
        geometry, Compose(appearance.transforms + final.transforms), key, PatchBoxSampler(num_patches, scale),
        create_student_transform(patch_size, mean, std, use_prefetcher, interpolation), patch_size, interpolation)
