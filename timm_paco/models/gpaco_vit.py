""" GPaCo Vision Transformer variants (Cui et al., TPAMI 2023, arXiv:2209.12400).

The GPaCo ViTs are MAE-pretrained ViT-B/16 and ViT-L/16 fine-tuned with GPaCo: timm ViTs with global
average pooling over patch tokens (``fc_norm``, no final ``norm``), class centres in ``head`` and a
Linear-GELU-Linear-GELU-Linear projector (width = embed dim) to a 128-d embedding.
Reported full-ImageNet top-1 from the seed repository's README is in each cfg's ``notes``.
"""
from typing import Any, Dict

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs, register_model

from .builder import build_paco_model
from .paco_model import PaCoModel

__all__ = []

_ORIGIN = 'https://github.com/dvlab-research/Parametric-Contrastive-Learning'


def _create_gpaco_vit(variant: str, backbone: str, pretrained: bool = False, **kwargs) -> PaCoModel:
    defaults = dict(proj_type='mlp3', proj_act='gelu', default_task='gpaco', global_pool='avg')
    return build_paco_model(variant, backbone, pretrained, **dict(defaults, **kwargs))


def _cfg(**kwargs) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None,
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'backbone.patch_embed.proj', 'classifier': 'backbone.head',
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
    'gpaco_vit_base_patch16_224.in1k': _zoo_cfg('gpaco_vit_base_patch16_224', 84.0),
    'gpaco_vit_large_patch16_224.in1k': _zoo_cfg('gpaco_vit_large_patch16_224', 86.0),
})


@register_model
def gpaco_vit_base_patch16_224(pretrained: bool = False, **kwargs) -> PaCoModel:
    """GPaCo ViT-B/16 (MAE-pretrained, global average pooling)."""
    return _create_gpaco_vit('gpaco_vit_base_patch16_224', 'vit_base_patch16_224', pretrained, **kwargs)


@register_model
def gpaco_vit_large_patch16_224(pretrained: bool = False, **kwargs) -> PaCoModel:
    """GPaCo ViT-L/16 (MAE-pretrained, global average pooling)."""
    return _create_gpaco_vit('gpaco_vit_large_patch16_224', 'vit_large_patch16_224', pretrained, **kwargs)
