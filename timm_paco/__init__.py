"""timm-paco: parametric contrastive learning (PaCo, GPaCo) as a timm plugin.

Importing the package registers the PaCo / GPaCo model variants (and the CIFAR ResNet-32) in timm's
model registry, so ``timm.create_model('paco_resnet50')`` works, and the training methods in its own
(``timm_paco.methods``: ``list_methods``, ``get_method``, ``register_method``).
"""
from .version import __version__
from . import losses, data, models, tasks, methods
from .losses import (
    BalancedSoftmaxLoss, CELoss, GPaCoLoss, PaCoLoss, SupConLoss, create_loss, list_losses, register_loss,
)
from .queue import LabelledQueue
from .tasks import ContrastiveModule, create_contrastive_module
from .methods import Method, create_task, get_method, list_methods, register_method
