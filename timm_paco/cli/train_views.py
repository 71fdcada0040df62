"""The views of a training run: ``--paco-views`` (or the task's default) as a recipe, its view count, and the
V-view training transform built from timm's augmentation flags."""
from dataclasses import dataclass

from timm.data import create_transform

from timm_paco.cli.train_args import TIMM_VIEWS
from timm_paco.data import MultiViewTransform, create_patch_view_transform, create_view_transform, parse_view_recipe
from timm_paco.methods import Method

__all__ = ['ViewPlan', 'plan_views', 'create_train_view_transform']


@dataclass(frozen=True)
class ViewPlan:
    """``recipe``: the ``--paco-views`` value; ``timm_views``: timm's single-view loader; ``num_views``: V;
    ``patches``: PBSD's boxes and patch crops too (dscl with ``--pbsd-weight`` > 0)."""
    recipe: str
    timm_views: bool
    num_views: int
    patches: bool = False


def plan_views(args, method: Method) -> ViewPlan:
    """The views of ``--paco-views`` (None: the method's default, else timm's single view) and the method's patch
    crops (``Method.patches``)."""
    recipe = args.paco_views or method.views or TIMM_VIEWS
    timm_views = recipe == TIMM_VIEWS
    patches = method.patches is not None and method.patches(args)
    return ViewPlan(recipe, timm_views, 1 if timm_views else len(parse_view_recipe(recipe)), patches)


def create_train_view_transform(args, views: ViewPlan, data_config, interpolation: str):
    """The V-view training transform of ``views`` from timm's augmentation flags (``--no-aug``: V plain views),
    with PBSD's boxes and patches (``--pbsd-*``) when ``views.patches``."""
    input_size = data_config['input_size']
    common = dict(mean=data_config['mean'], std=data_config['std'], use_prefetcher=args.prefetcher)
    names = parse_view_recipe(views.recipe)
    if args.no_aug:
        plain = create_transform(input_size, is_training=True, no_aug=True, interpolation=interpolation, **common)
        return MultiViewTransform([plain] * len(names))
    optional = {k: v for k, v in (
        ('rand_augment', args.aa), ('grayscale_prob', args.grayscale_prob),
        ('color_jitter_prob', args.color_jitter_prob),
        ('gaussian_blur_prob', args.gaussian_blur_prob)) if v is not None}
    transform = create_view_transform(
        input_size, views=names, scale=tuple(args.scale), ratio=tuple(args.ratio), hflip=args.hflip,
        vflip=args.vflip, interpolation=interpolation, train_crop_mode=args.train_crop_mode,
        color_jitter=args.color_jitter, re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
        separate=views.patches, **optional, **common)
    if not views.patches:
        return transform
    return create_patch_view_transform(
        transform, num_patches=args.pbsd_patches, patch_size=args.pbsd_patch_size, scale=tuple(args.pbsd_scale),
        interpolation=interpolation, **common)
