""" DSCL ResNet and ResNeXt names (Xuan & Zhang, AAAI 2024, arXiv:2403.06151): plain timm models with the
paper's training recipe.

``dscl_resnet50`` builds exactly ``timm.create_model('resnet50')``; its recipe (``recipes.py``) makes train.py
run ``--task dscl`` and the task build the official code's projector, Linear(C, C)-ReLU-Linear(C, 128)
(``'mlp2'``). The official repository (github.com/SY-Xuan/DSCL) releases no weights, so the cfgs carry none;
the published ImageNet-LT top-1 of ResNet-50 (57.7 with PBSD, 52.6 without) is what a full run should reach.
``dscl_resnet32`` is the CIFAR ResNet-32 with the same recipe (the paper reports no CIFAR run; its head width
is kept at 128).
"""
from timm.models import generate_default_cfgs, register_model
from timm.models.resnet import ResNet

from .paco_resnet import create_paco_resnet, resnet_cfg
from .recipes import PaperRecipe, register_recipe
from .resnet_cifar import CIFAR_MEAN, CIFAR_STD, ResNetCifar, create_resnet_cifar

__all__ = []

_PAPER = dict(paper_name='Decoupled Contrastive Learning for Long-Tailed Recognition', paper_ids='arXiv:2403.06151')


def _recipe(stock: str) -> PaperRecipe:
    return PaperRecipe(task='dscl', stock_architecture=stock, proj_dim=128, proj_type='mlp2', proj_act='relu')


default_cfgs = generate_default_cfgs({
    'dscl_resnet50': resnet_cfg(license='apache-2.0', origin_url='https://github.com/SY-Xuan/DSCL', **_PAPER),
    'dscl_resnext50_32x4d': resnet_cfg(license='apache-2.0', origin_url='https://github.com/SY-Xuan/DSCL',
                                       **_PAPER),
    'dscl_resnet32': resnet_cfg(
        num_classes=100, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0, mean=CIFAR_MEAN,
        std=CIFAR_STD, license='apache-2.0', origin_url='https://github.com/SY-Xuan/DSCL', **_PAPER),
})


register_recipe('dscl_resnet32', _recipe('resnet32_cifar'))


@register_model
def dscl_resnet32(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """DSCL CIFAR ResNet-32 (16/32/64 channels)."""
    return create_resnet_cifar('dscl_resnet32', pretrained, **dict(layers=(5, 5, 5), widths=(16, 32, 64), **kwargs))


register_recipe('dscl_resnet50', _recipe('resnet50'))


@register_model
def dscl_resnet50(pretrained: bool = False, **kwargs) -> ResNet:
    """DSCL ResNet-50."""
    return create_paco_resnet('dscl_resnet50', 'resnet50', pretrained, **kwargs)


register_recipe('dscl_resnext50_32x4d', _recipe('resnext50_32x4d'))


@register_model
def dscl_resnext50_32x4d(pretrained: bool = False, **kwargs) -> ResNet:
    """DSCL ResNeXt-50 32x4d."""
    return create_paco_resnet('dscl_resnext50_32x4d', 'resnext50_32x4d', pretrained, **kwargs)
