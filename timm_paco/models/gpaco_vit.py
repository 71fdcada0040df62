""" GPaCo Vision Transformer names (Cui et al., TPAMI 2023, arXiv:2209.12400): plain timm ViTs.

Named in timm's ViT style, ``vit_<size>_patch16_gpaco_224`` (as ``vit_base_patch16_clip_224``), so timm's own
model suite tests them as the ViTs they are; the names of earlier releases, ``gpaco_vit_<size>_patch16_224``,
still build them with timm's deprecation warning.

The GPaCo ViTs are MAE-pretrained ViT-B/16 and ViT-L/16 fine-tuned with GPaCo: timm ``VisionTransformer``s with
global average pooling over patch tokens (``fc_norm``, no final ``norm``) and class centres in ``head``, exactly
``timm.create_model('vit_base_patch16_224', global_pool='avg')``. Training adds a Linear-GELU-Linear-GELU-Linear
projector (width = embed dim) to a 128-d embedding (the recipe, ``recipes.py``).
Reported full-ImageNet top-1 from the seed repository's README is in each cfg's ``notes``.
"""
from functools import partial
from typing import Any, Dict

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model, register_model_deprecations
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn as vit_checkpoint_filter_fn

from .checkpoint_filter import checkpoint_filter_fn
from .recipes import PaperRecipe, register_recipe
from .zoo import with_zoo_errors

__all__ = []

_ORIGIN = 'https://github.com/dvlab-research/Parametric-Contrastive-Learning'
_VIT_ARGS = {  # timm architecture: its ViT arguments (as timm's own entrypoints give them)
    'vit_base_patch16_224': dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    'vit_large_patch16_224': dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
}


@with_zoo_errors
def _create_gpaco_vit(variant: str, stock: str, pretrained: bool = False, **kwargs) -> VisionTransformer:
    """``variant`` as the timm ViT ``stock`` with average pooling, ``variant``'s cfgs and checkpoint filter (the
    seeds' layout remapped, then timm's ViT filter: position-embedding resampling for another image size)."""
    kwargs = dict(_VIT_ARGS[stock], **dict(dict(global_pool='avg'), **kwargs))
    out_indices = kwargs.pop('out_indices', 3)
    return build_model_with_cfg(
        VisionTransformer, variant, pretrained,
        pretrained_filter_fn=partial(checkpoint_filter_fn, adapt=vit_checkpoint_filter_fn),
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **kwargs,
    )


def _cfg(**kwargs) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None,
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj', 'classifier': 'head',
        'license': 'cc-by-nc-4.0', 'origin_url': _ORIGIN,
        'paper_name': 'Generalized Parametric Contrastive Learning', 'paper_ids': 'arXiv:2209.12400',
        **kwargs,
    }


def _zoo_cfg(name: str, top1: float) -> Dict[str, Any]:
    return _cfg(
        hf_hub_id=f'timm-paco/{name}.in1k',
        notes=(f'top1: {top1}', 'eval: ImageNet-1k val', f'source: GPaCo results table, {_ORIGIN}'),
    )


default_cfgs = generate_default_cfgs({
    'vit_base_patch16_gpaco_224.in1k': _zoo_cfg('vit_base_patch16_gpaco_224', 84.0),
    'vit_large_patch16_gpaco_224.in1k': _zoo_cfg('vit_large_patch16_gpaco_224', 86.0),
})


for _name, _stock in (('vit_base_patch16_gpaco_224', 'vit_base_patch16_224'),
                     ('vit_large_patch16_gpaco_224', 'vit_large_patch16_224')):
    register_recipe(_name, PaperRecipe(task='gpaco', stock_architecture=_stock, proj_type='mlp3', proj_act='gelu'))


@register_model
def vit_base_patch16_gpaco_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """GPaCo ViT-B/16 (MAE-pretrained, global average pooling)."""
    return _create_gpaco_vit('vit_base_patch16_gpaco_224', 'vit_base_patch16_224', pretrained, **kwargs)


@register_model
def vit_large_patch16_gpaco_224(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """GPaCo ViT-L/16 (MAE-pretrained, global average pooling)."""
    return _create_gpaco_vit('vit_large_patch16_gpaco_224', 'vit_large_patch16_224', pretrained, **kwargs)


register_model_deprecations(__name__, {  # the names of earlier releases
    'gpaco_vit_base_patch16_224': 'vit_base_patch16_gpaco_224',
    'gpaco_vit_large_patch16_224': 'vit_large_patch16_gpaco_224',
})
