"""timm-paco: parametric contrastive learning (PaCo, GPaCo) as a timm plugin.

Importing the package registers the PaCo / GPaCo model variants (and the CIFAR ResNet-32) in timm's
model registry, so ``timm.create_model('paco_resnet50')`` works.
"""
from .version import __version__
from . import losses, data, models, tasks
from .losses import (
    BalancedSoftmaxLoss, CELoss, GPaCoLoss, PaCoLoss, SupConLoss, create_loss, list_losses, register_loss,
)
from .queue import LabelledQueue
from .tasks import ContrastiveModule, create_contrastive_module, create_task
