""" PaCo / GPaCo ResNet and ResNeXt names, and the CIFAR ResNet-32 PaCo name: plain timm models with the papers'
pretrained cfgs.

``paco_resnet50`` builds exactly ``timm.create_model('resnet50')`` (a ``timm.models.ResNet``); what it adds is its
pretrained cfgs and its training recipe (``recipes.py``): the task and the projector the task builds.
PaCo (Cui et al., ICCV 2021, arXiv:2107.12028): Linear-BN-ReLU-Linear projector to 128-d (32-d for the CIFAR
ResNet-32, as in the seeds' CIFAR-LT scripts). GPaCo (Cui et al., TPAMI 2023, arXiv:2209.12400): the seeds'
Linear-ReLU-Linear-ReLU-Linear projector to 128-d and no momentum encoder.

Pretrained tags hold the top-1 the authors report in the seed repository's README
(github.com/dvlab-research/Parametric-Contrastive-Learning) in ``notes``; the seeds' checkpoints convert on load
through ``checkpoint_filter_fn``.
"""
from typing import Any, Dict

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import Bottleneck, ResNet

from .checkpoint_filter import checkpoint_filter_fn
from .recipes import PaperRecipe, register_recipe
from .zoo import with_zoo_errors
from .resnet_cifar import CIFAR_MEAN, CIFAR_STD, ResNetCifar, create_resnet_cifar

__all__ = []

_ORIGIN = 'https://github.com/dvlab-research/Parametric-Contrastive-Learning'
_PAPERS = {
    'paco': dict(paper_name='Parametric Contrastive Learning', paper_ids='arXiv:2107.12028'),
    'gpaco': dict(paper_name='Generalized Parametric Contrastive Learning', paper_ids='arXiv:2209.12400'),
}
_DATASETS = {  # tag: (num_classes, evaluation set named in the notes, the authors' evaluation normalisation)
    'in1k': (1000, 'ImageNet-1k val', {}),
    'imagenet_lt': (1000, 'ImageNet-LT test', {}),
    # paco_lt.py (PaCo and GPaCo) normalises iNaturalist with its own statistics, training and evaluation
    'inat2018': (8142, 'iNaturalist 2018 val', dict(mean=(0.466, 0.471, 0.380), std=(0.195, 0.194, 0.192))),
    'places_lt': (365, 'Places-LT test', {}),
}
_RESNET_ARGS = {  # timm architecture: its ResNet arguments (as timm's own entrypoints give them)
    'resnet50': dict(block=Bottleneck, layers=(3, 4, 6, 3)),
    'resnet101': dict(block=Bottleneck, layers=(3, 4, 23, 3)),
    'resnet152': dict(block=Bottleneck, layers=(3, 8, 36, 3)),
    'resnet200': dict(block=Bottleneck, layers=(3, 24, 36, 3)),
    'resnext50_32x4d': dict(block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4),
    'resnext101_32x4d': dict(block=Bottleneck, layers=(3, 4, 23, 3), cardinality=32, base_width=4),
}
_PROJECTORS = {'paco': dict(proj_type='mlp', proj_act='relu'), 'gpaco': dict(proj_type='mlp3', proj_act='relu')}


def _recipe(variant: str, stock: str, **kwargs) -> PaperRecipe:
    method = variant.split('_')[0]
    return PaperRecipe(task=method, stock_architecture=stock, **dict(_PROJECTORS[method], **kwargs))


@with_zoo_errors
def create_paco_resnet(variant: str, stock: str, pretrained: bool = False, **kwargs) -> ResNet:
    """``variant`` as the timm ResNet ``stock`` (``resnet50``), with ``variant``'s cfgs and checkpoint filter."""
    return build_model_with_cfg(
        ResNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **dict(_RESNET_ARGS[stock], **kwargs))


def resnet_cfg(**kwargs) -> Dict[str, Any]:
    """A ResNet cfg of the seeds' ImageNet recipe (224 px, crop 0.875); ``kwargs`` override."""
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc',
        'license': 'mit', 'origin_url': _ORIGIN, **kwargs,
    }


def _zoo_cfg(name: str, tag: str, top1: float, **kwargs) -> Dict[str, Any]:
    """Cfg of a seed-zoo checkpoint with its reported top-1 and dataset class count."""
    num_classes, eval_set, normalisation = _DATASETS[tag]
    method = name.split('_')[0]
    return resnet_cfg(
        hf_hub_id=f'timm-paco/{name}.{tag}',
        num_classes=num_classes,
        notes=(f'top1: {top1}', f'eval: {eval_set}', f'source: {method} results table, {_ORIGIN}'),
        **_PAPERS[method],
        **dict(normalisation, **kwargs),
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
    'paco_resnet32': resnet_cfg(
        num_classes=100, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0,
        mean=CIFAR_MEAN, std=CIFAR_STD, **_PAPERS['paco']),
})


register_recipe('paco_resnet32', _recipe('paco_resnet32', 'resnet32_cifar', proj_dim=32))


@register_model
def paco_resnet32(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """PaCo CIFAR ResNet-32 (16/32/64 channels); trained with a 64-64-32 projector as in the seeds' CIFAR-LT runs."""
    model_args = dict(layers=(5, 5, 5), widths=(16, 32, 64))
    return create_resnet_cifar('paco_resnet32', pretrained, **dict(model_args, **kwargs))


register_recipe('paco_resnet50', _recipe('paco_resnet50', 'resnet50'))


@register_model
def paco_resnet50(pretrained: bool = False, **kwargs) -> ResNet:
    """PaCo ResNet-50."""
    return create_paco_resnet('paco_resnet50', 'resnet50', pretrained, **kwargs)


register_recipe('paco_resnet101', _recipe('paco_resnet101', 'resnet101'))


@register_model
def paco_resnet101(pretrained: bool = False, **kwargs) -> ResNet:
    """PaCo ResNet-101."""
    return create_paco_resnet('paco_resnet101', 'resnet101', pretrained, **kwargs)


register_recipe('paco_resnet152', _recipe('paco_resnet152', 'resnet152'))


@register_model
def paco_resnet152(pretrained: bool = False, **kwargs) -> ResNet:
    """PaCo ResNet-152."""
    return create_paco_resnet('paco_resnet152', 'resnet152', pretrained, **kwargs)


register_recipe('paco_resnet200', _recipe('paco_resnet200', 'resnet200'))


@register_model
def paco_resnet200(pretrained: bool = False, **kwargs) -> ResNet:
    """PaCo ResNet-200."""
    return create_paco_resnet('paco_resnet200', 'resnet200', pretrained, **kwargs)


register_recipe('paco_resnext50_32x4d', _recipe('paco_resnext50_32x4d', 'resnext50_32x4d'))


@register_model
def paco_resnext50_32x4d(pretrained: bool = False, **kwargs) -> ResNet:
    """PaCo ResNeXt-50 32x4d."""
    return create_paco_resnet('paco_resnext50_32x4d', 'resnext50_32x4d', pretrained, **kwargs)


register_recipe('paco_resnext101_32x4d', _recipe('paco_resnext101_32x4d', 'resnext101_32x4d'))


@register_model
def paco_resnext101_32x4d(pretrained: bool = False, **kwargs) -> ResNet:
    """PaCo ResNeXt-101 32x4d."""
    return create_paco_resnet('paco_resnext101_32x4d', 'resnext101_32x4d', pretrained, **kwargs)


register_recipe('gpaco_resnet50', _recipe('gpaco_resnet50', 'resnet50'))


@register_model
def gpaco_resnet50(pretrained: bool = False, **kwargs) -> ResNet:
    """GPaCo ResNet-50."""
    return create_paco_resnet('gpaco_resnet50', 'resnet50', pretrained, **kwargs)


register_recipe('gpaco_resnet152', _recipe('gpaco_resnet152', 'resnet152'))


@register_model
def gpaco_resnet152(pretrained: bool = False, **kwargs) -> ResNet:
    """GPaCo ResNet-152."""
    return create_paco_resnet('gpaco_resnet152', 'resnet152', pretrained, **kwargs)


register_recipe('gpaco_resnext50_32x4d', _recipe('gpaco_resnext50_32x4d', 'resnext50_32x4d'))


@register_model
def gpaco_resnext50_32x4d(pretrained: bool = False, **kwargs) -> ResNet:
    """GPaCo ResNeXt-50 32x4d."""
    return create_paco_resnet('gpaco_resnext50_32x4d', 'resnext50_32x4d', pretrained, **kwargs)


register_recipe('gpaco_resnext101_32x4d', _recipe('gpaco_resnext101_32x4d', 'resnext101_32x4d'))


@register_model
def gpaco_resnext101_32x4d(pretrained: bool = False, **kwargs) -> ResNet:
    """GPaCo ResNeXt-101 32x4d."""
    return create_paco_resnet('gpaco_resnext101_32x4d', 'resnext101_32x4d', pretrained, **kwargs)
