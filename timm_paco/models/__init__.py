"""timm_paco.models: PaCoModel, wrap() and the registered PaCo / GPaCo / CIFAR ResNet variants.

Importing registers with timm: ``resnet32_cifar``, ``paco_resnet32``, ``paco_resnet50/101/152/200``,
``paco_resnext50_32x4d``, ``paco_resnext101_32x4d``, ``gpaco_resnet50/152``,
``gpaco_resnext50_32x4d``, ``gpaco_resnext101_32x4d``, ``gpaco_vit_base_patch16_224``,
``gpaco_vit_large_patch16_224``. Any other timm classifier becomes a PaCo model with
``wrap('convnext_tiny', num_classes=...)``.
"""
from .projector import Projector, PROJ_TYPES
from .paco_model import PaCoModel, wrap, is_transformer_like
from .checkpoint_filter import checkpoint_filter_fn, convert_state_dict, check_state_dict, unwrap_checkpoint
from .builder import build_paco_model
from . import resnet_cifar, paco_resnet, gpaco_vit
from .resnet_cifar import ResNetCifar
