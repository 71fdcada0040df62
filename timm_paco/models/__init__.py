"""timm_paco.models: the registered PaCo / GPaCo / DSCL names and the CIFAR ResNet, all plain timm models.

Importing registers with timm: ``resnet32_cifar``, ``paco_resnet32``, ``paco_resnet50/101/152/200``,
``paco_resnext50_32x4d``, ``paco_resnext101_32x4d``, ``gpaco_resnet50/152``, ``gpaco_resnext50_32x4d``,
``gpaco_resnext101_32x4d``, ``vit_base_patch16_gpaco_224``, ``vit_large_patch16_gpaco_224``, ``dscl_resnet32``,
``dscl_resnet50``, ``dscl_resnext50_32x4d``. Each builds the timm
architecture its weights need (``paco_resnet50`` is a ``timm.models.ResNet``) with the papers' pretrained cfgs;
the projector, key encoder and queue that training adds belong to the task (``timm_paco.tasks``).
"""
from .checkpoint_filter import (
    check_state_dict, checkpoint_filter_fn, model_state_dict, split_state_dict, unwrap_checkpoint,
)
from .recipes import PaperRecipe, recipe_for, stock_architecture
from . import resnet_cifar, paco_resnet, gpaco_vit, dscl_resnet
from .resnet_cifar import ResNetCifar


def registered_names() -> list:
    """Every architecture name timm_paco registers with timm, sorted."""
    import timm
    from timm.models import model_entrypoint
    return sorted(n for n in timm.list_models() if model_entrypoint(n).__module__.startswith('timm_paco.'))
