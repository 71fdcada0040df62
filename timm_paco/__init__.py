"""timm-paco: parametric contrastive learning (PaCo, GPaCo, DSCL) as a timm plugin.

Importing the package registers the PaCo model variants in timm's model registry.
"""
from .version import __version__
from . import losses, data, models, tasks
