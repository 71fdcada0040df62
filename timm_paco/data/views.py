"""Multi-view training transforms and the view-major batch convention.

A multi-view transform decodes nothing itself: the dataset decodes an image once and the transform returns a
tuple of V independently augmented views. timm's collate functions turn a batch of such samples into

* ``fast_collate`` (prefetcher): one uint8 tensor ``[V·B, C, H, W]``, view-major (rows ``v·B .. v·B+B-1`` are
  view ``v``), with targets repeated to ``[V·B]``;
* ``default_collate`` (``--no-prefetcher``): a list of V float tensors ``[B, C, H, W]`` and targets ``[B]``.

``stack_views`` maps both to ``(input [V·B, C, H, W], target [B])``.

Recipes follow PaCo's ``--aug`` names (Cui et al., ICCV 2021), built from timm's
``transforms_imagenet_train``:

* ``randcls``: RandomResizedCrop (scale 0.08–1), flip, colour jitter (0.4, 0.4, 0.4, hue 0) always applied,
  RandAugment ``rand-n2-m10-mstd0.5``.
* ``sim``: RandomResizedCrop (scale 0.08–1), flip, colour jitter (0.4, 0.4, 0.4, hue 0) always applied,
  grayscale p=0.2, Gaussian blur (sigma 0.1–2) p=0.5.
* ``randclsstack``: ``randcls`` with ``sim``'s grayscale and blur stacked on (PaCo's ResNeXt / ResNet-200 recipes,
  GPaCo's ``randcls_randclsstack`` and its ViTs' ``randclsstack_sim``).

The RandAugment policy is ``rand_augment`` (train.py ``--aa``; the scripts' ``--randaug_n`` / ``--randaug_m``
are its ``n`` and ``m``).

A recipe string joins view names with ``_``: ``randcls_sim`` (PaCo's default), ``sim_sim``, ``rand_rand``,
``randcls_sim_sim`` (three views) … ``single`` is one ``randcls`` view.
"""
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.transforms_factory import transforms_imagenet_train

__all__ = [
    'MultiViewTransform', 'create_view_transform', 'parse_view_recipe', 'stack_views', 'VIEW_NAMES',
]

PACO_RAND_AUGMENT = 'rand-n2-m10-mstd0.5'
PACO_COLOR_JITTER = (0.4, 0.4, 0.4)  # brightness, contrast, saturation; no hue
VIEW_NAMES = ('randcls', 'rand', 'sim', 'randclsstack')
_VIEW_ALIASES = {'rand': 'randcls'}
_RECIPE_ALIASES = {'single': 'randcls'}


class MultiViewTransform:
    """Apply each of V transforms to the same decoded image; return a tuple of V views."""

    def __init__(self, transforms: Sequence[Callable]):
        if len(transforms) < 1:
            raise ValueError('MultiViewTransform: transforms must hold at least one view transform')
        self.transforms = tuple(transforms)

    @property
    def num_views(self) -> int:
        return len(self.transforms)

    def __call__(self, img):
        return tuple(t(img) for t in self.transforms)

    def __repr__(self):
        lines = [f'  view {i}: ' + repr(t).replace('\n', '\n  ') for i, t in enumerate(self.transforms)]
        return '\n'.join([f'{self.__class__.__name__}('] + lines + [')'])


def parse_view_recipe(views: Union[str, Sequence[str]], arg_name: str = 'views') -> Tuple[str, ...]:
    """``'randcls_sim'`` -> ``('randcls', 'sim')``; ``'single'`` -> ``('randcls',)``. An unknown recipe is a
    ``ValueError`` naming ``arg_name``."""
    given = views
    if isinstance(views, str):
        views = _RECIPE_ALIASES.get(views, views).split('_')
    names = tuple(_VIEW_ALIASES.get(v, v) for v in views)
    unknown = [v for v in names if v not in VIEW_NAMES]
    if not names or unknown:
        raise ValueError(
            f'{arg_name}: unknown view recipe {given!r}' + (f' (unknown view(s) {unknown})' if unknown else '')
            + f'; expected view names from {VIEW_NAMES} joined by "_" (e.g. "randcls_sim", "sim_sim", "rand_rand") '
            f'or "single"')
    return names


def _img_size(input_size):
    if isinstance(input_size, int):
        return input_size
    size = tuple(input_size)[-2:]
    if len(size) != 2:
        raise ValueError(f'input_size: expected an int, (H, W) or (C, H, W), got {input_size!r}')
    return size[0] if size[0] == size[1] else size


def create_view_transform(
        input_size: Union[int, Tuple[int, ...]] = 224,
        views: Union[str, Sequence[str]] = 'randcls_sim',
        use_prefetcher: bool = False,
        mean: Tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
        std: Tuple[float, ...] = IMAGENET_DEFAULT_STD,
        scale: Optional[Tuple[float, float]] = None,
        ratio: Optional[Tuple[float, float]] = None,
        hflip: float = 0.5,
        vflip: float = 0.,
        interpolation: str = 'bilinear',
        train_crop_mode: Optional[str] = None,
        rand_augment: str = PACO_RAND_AUGMENT,
        color_jitter: Union[float, Tuple[float, ...]] = PACO_COLOR_JITTER,
        color_jitter_prob: Optional[float] = None,
        grayscale_prob: float = 0.2,
        gaussian_blur_prob: float = 0.5,
        re_prob: float = 0.,
        re_mode: str = 'const',
        re_count: int = 1,
        re_num_splits: int = 0,
        separate: bool = False,
):
    """Build a V-view training transform from timm's ``transforms_imagenet_train``.

    Returns a callable: PIL image -> tuple of V tensors ``[C, H, W]``; float and normalised with ``mean`` /
    ``std`` (and random erasing when ``re_prob > 0``), or uint8 when ``use_prefetcher`` (timm's
    ``PrefetchLoader`` then normalises and erases on the device). ``separate``: instead, a list of V
    ``(geometry, appearance, final)`` transform triples (timm's ``separate=True``: crop and flips; colour
    augmentation; tensor conversion).
    """
    common = dict(
        img_size=_img_size(input_size),
        scale=scale,
        ratio=ratio,
        train_crop_mode=train_crop_mode,
        hflip=hflip,
        vflip=vflip,
        color_jitter=color_jitter,
        color_jitter_prob=color_jitter_prob,
        interpolation=interpolation,
        mean=mean,
        std=std,
        re_prob=re_prob,
        re_mode=re_mode,
        re_count=re_count,
        re_num_splits=re_num_splits,
        use_prefetcher=use_prefetcher,
    )
    view_kwargs = dict(
        # timm drops colour jitter when RandAugment is on; PaCo's randcls view keeps both
        randcls=dict(auto_augment=rand_augment, force_color_jitter=True),
        sim=dict(grayscale_prob=grayscale_prob, gaussian_blur_prob=gaussian_blur_prob),
        randclsstack=dict(auto_augment=rand_augment, force_color_jitter=True, grayscale_prob=grayscale_prob,
                          gaussian_blur_prob=gaussian_blur_prob),
    )
    names = parse_view_recipe(views)
    size = common['img_size']
    if {'sim', 'randclsstack'} & set(names) and gaussian_blur_prob > 0 and min(size if isinstance(size, tuple) else (size,)) < 12:
        raise ValueError(f'input_size {input_size}: the sim view\'s Gaussian blur (timm\'s 23-pixel kernel) needs '
                         f'images of at least 12 pixels; use a larger --img-size or gaussian_blur_prob=0')
    if separate:
        return [transforms_imagenet_train(**common, **view_kwargs[n], separate=True) for n in names]
    return MultiViewTransform([transforms_imagenet_train(**common, **view_kwargs[n]) for n in names])


def stack_views(
        input: Union[torch.Tensor, Sequence[torch.Tensor]],
        target: torch.Tensor,
        num_views: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return ``(input [V·B, ...] view-major, target [B, ...])`` from what a loader yields.

    ``input`` is a list / tuple of V tensors ``[B, ...]`` (``default_collate``) or one view-major tensor
    ``[V·B, ...]`` (``fast_collate``); ``target`` is ``[B, ...]`` or ``[V·B, ...]`` (V repeats, first B kept).
    """
    if num_views < 1:
        raise ValueError(f'num_views: expected >= 1, got {num_views}')
    if isinstance(input, (list, tuple)):
        if len(input) != num_views:
            raise ValueError(f'input: expected a list of num_views={num_views} view tensors, got {len(input)}')
        shapes = {tuple(x.shape) for x in input}
        if len(shapes) != 1:
            raise ValueError(f'input: all views must have the same shape [B, ...], got {sorted(shapes)}')
        input = torch.cat(list(input), dim=0)
    elif not isinstance(input, torch.Tensor):
        raise ValueError(f'input: expected a tensor [V·B, ...] or a list of V tensors [B, ...], got {type(input)}')
    rows = input.shape[0]
    if rows % num_views:
        raise ValueError(f'input: {rows} rows is not a multiple of num_views={num_views} (expected [V·B, ...])')
    batch_size = rows // num_views
    if target.shape[0] == rows:
        target = target[:batch_size]
    elif target.shape[0] != batch_size:
        raise ValueError(
            f'target: expected [B]={batch_size} or [V·B]={rows} rows for input [{rows}, ...] with '
            f'num_views={num_views}, got {tuple(target.shape)}')
    return input, target
