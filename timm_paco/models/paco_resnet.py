""" PaCo / GPaCo ResNet and ResNeXt variants, and the CIFAR ResNet-32 PaCo model.

PaCo (Cui et al., ICCV 2021, arXiv:2107.12028): timm ResNet + Linear-BN-ReLU-Linear projector to 128-d
(32-d for the CIFAR ResNet-32, as in the seeds' CIFAR-LT scripts).
GPaCo (Cui et al., TPAMI 2023, arXiv:2209.12400): the same backbones with the GPaCo seeds'
Linear-ReLU-Linear-ReLU-Linear projector to 128-d and no momentum encoder.

Pretrained tags hold the top-1 the authors report in the seed repository's README
(github.com/dvlab-research/Parametric-Contrastive-Learning) in ``notes``; weights converted from the
authors' checkpoints with ``python -m timm_paco.convert`` live at ``hf_hub_id``.
"""
from typing import Any, Dict

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs, register_model

from .builder import build_paco_model
from .paco_model import PaCoModel
from .resnet_cifar import CIFAR100_MEAN, CIFAR100_STD

__all__ = []

_ORIGIN = 'https://github.com/dvlab-research/Parametric-Contrastive-Learning'
_PAPERS = {
    'paco': dict(paper_name='Parametric Contrastive Learning', paper_ids='arXiv:2107.12028'),
    'gpaco': dict(paper_name='Generalized Parametric Contrastive Learning', paper_ids='arXiv:2209.12400'),
}
_DATASETS = {  # tag: (num_classes, evaluation set named in the notes)
    'in1k': (1000, 'ImageNet-1k val'),
    'imagenet_lt': (1000, 'ImageNet-LT test'),
    'inat2018': (8142, 'iNaturalist 2018 val'),
    'places_lt': (365, 'Places-LT test'),
}


def _create_paco_resnet(variant: str, backbone: str, pretrained: bool = False, **kwargs) -> PaCoModel:
    method = variant.split('_')[0]
    if method == 'gpaco':
        kwargs = dict(dict(proj_type='mlp3', proj_act='relu', default_task='gpaco'), **kwargs)
    else:
        kwargs = dict(dict(proj_type='mlp', proj_act='relu', default_task='paco'), **kwargs)
    return build_paco_model(variant, backbone, pretrained, **kwargs)


def _cfg(**kwargs) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'backbone.conv1', 'classifier': 'backbone.fc',
        'license': 'mit', 'origin_url': _ORIGIN, **kwargs,
    }


def _zoo_cfg(name: str, tag: str, top1: float, **kwargs) -> Dict[str, Any]:
    """Cfg of a seed-zoo checkpoint with its reported top-1 and dataset class count."""
    num_classes, eval_set = _DATASETS[tag]
    method = name.split('_')[0]
    return _cfg(
        hf_hub_id=f'timm-paco/{name}.{tag}',
        num_classes=num_classes,
        notes=(f'top1: {top1}', f'eval: {eval_set}', f'source: {method} results table, {_ORIGIN}'),
        **_PAPERS[method],
        **kwargs,
    )


default_cfgs = generate_default_cfgs({
    # PaCo, ICCV 2021
    'paco_resnet50.imagenet_lt': _zoo_cfg('paco_resnet50', 'imagenet_lt', 57.0),
    'paco_resnet50.inat2018': _zoo_cfg('paco_resnet50', 'inat2018', 73.2),
    'paco_resnet50.in1k': _zoo_cfg('paco_resnet50', 'in1k', 79.3),
    'paco_resnet101.in1k': _zoo_cfg('paco_resnet101', 'in1k', 80.9),
    'paco_resnet152.places_lt': _zoo_cfg('paco_resnet152', 'places_lt', 41.2),
    'paco_resnet152.inat2018': _zoo_cfg('paco_resnet152', 'inat2018', 75.2),
    'paco_resnet200.in1k': _zoo_cfg('paco_resnet200', 'in1k', 81.8),
    'paco_resnext50_32x4d.imagenet_lt': _zoo_cfg('paco_resnext50_32x4d', 'imagenet_lt', 58.2),
    'paco_resnext101_32x4d.imagenet_lt': _zoo_cfg('paco_resnext101_32x4d', 'imagenet_lt', 60.0),
    # GPaCo, TPAMI 2023
    'gpaco_resnet50.imagenet_lt': _zoo_cfg('gpaco_resnet50', 'imagenet_lt', 58.5),
    'gpaco_resnet50.inat2018': _zoo_cfg('gpaco_resnet50', 'inat2018', 75.4),
    'gpaco_resnet50.in1k': _zoo_cfg('gpaco_resnet50', 'in1k', 79.7),
    'gpaco_resnet152.places_lt': _zoo_cfg('gpaco_resnet152', 'places_lt', 41.7),
    'gpaco_resnet152.inat2018': _zoo_cfg('gpaco_resnet152', 'inat2018', 78.1),
    'gpaco_resnext50_32x4d.imagenet_lt': _zoo_cfg('gpaco_resnext50_32x4d', 'imagenet_lt', 58.9),
    'gpaco_resnext101_32x4d.imagenet_lt': _zoo_cfg('gpaco_resnext101_32x4d', 'imagenet_lt', 60.8),
    # CIFAR ResNet-32 (no released weights)
    'paco_resnet32': _cfg(
        num_classes=100, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0,
        mean=CIFAR100_MEAN, std=CIFAR100_STD, **_PAPERS['paco']),
})


@register_model
def paco_resnet32(pretrained: bool = False, **kwargs) -> PaCoModel:
    """PaCo CIFAR ResNet-32 (16/32/64 channels); projector 64-64-32 as in the seeds' CIFAR-LT runs."""
    return _create_paco_resnet('paco_resnet32', 'resnet32_cifar', pretrained, **dict(dict(proj_dim=32), **kwargs))


@register_model
def paco_resnet50(pretrained: bool = False, **kwargs) -> PaCoModel:
    """PaCo ResNet-50."""
    return _create_paco_resnet('paco_resnet50', 'resnet50', pretrained, **kwargs)


@register_model
def paco_resnet101(pretrained: bool = False, **kwargs) -> PaCoModel:
    """PaCo ResNet-101."""
    return _create_paco_resnet('paco_resnet101', 'resnet101', pretrained, **kwargs)


@register_model
def paco_resnet152(pretrained: bool = False, **kwargs) -> PaCoModel:
    """PaCo ResNet-152."""
    return _create_paco_resnet('paco_resnet152', 'resnet152', pretrained, **kwargs)


@register_model
def paco_resnet200(pretrained: bool = False, **kwargs) -> PaCoModel:
    """PaCo ResNet-200."""
    return _create_paco_resnet('paco_resnet200', 'resnet200', pretrained, **kwargs)


@register_model
def paco_resnext50_32x4d(pretrained: bool = False, **kwargs) -> PaCoModel:
    """PaCo ResNeXt-50 32x4d."""
    return _create_paco_resnet('paco_resnext50_32x4d', 'resnext50_32x4d', pretrained, **kwargs)


@register_model
def paco_resnext101_32x4d(pretrained: bool = False, **kwargs) -> PaCoModel:
    """PaCo ResNeXt-101 32x4d."""
    return _create_paco_resnet('paco_resnext101_32x4d', 'resnext101_32x4d', pretrained, **kwargs)


@register_model
def gpaco_resnet50(pretrained: bool = False, **kwargs) -> PaCoModel:
    """GPaCo ResNet-50."""
    return _create_paco_resnet('gpaco_resnet50', 'resnet50', pretrained, **kwargs)


@register_model
def gpaco_resnet152(pretrained: bool = False, **kwargs) -> PaCoModel:
    """GPaCo ResNet-152."""
    return _create_paco_resnet('gpaco_resnet152', 'resnet152', pretrained, **kwargs)


@register_model
def gpaco_resnext50_32x4d(pretrained: bool = False, **kwargs) -> PaCoModel:
    """GPaCo ResNeXt-50 32x4d."""
    return _create_paco_resnet('gpaco_resnext50_32x4d', 'resnext50_32x4d', pretrained, **kwargs)


@register_model
def gpaco_resnext101_32x4d(pretrained: bool = False, **kwargs) -> PaCoModel:
    """GPaCo ResNeXt-101 32x4d."""
    return _create_paco_resnet('gpaco_resnext101_32x4d', 'resnext101_32x4d', pretrained, **kwargs)
