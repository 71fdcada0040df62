"""timm_paco.losses: PaCo / GPaCo, DSCL, SupCon, Balanced Softmax and CE behind one call contract and a registry.

Every classification loss: ``loss(logits [A, C], features [A, D], labels [A], queue_features=None [N, D],
queue_labels=None [N])``.
``PixelPaCoLoss`` (segmentation) takes ``(embed [N, D, h, w], seg_logit [N, C, h, w], labels [N, H, W])``.
"""
from .registry import create_loss, is_loss, list_losses, register_loss
from .paco import GPaCoLoss, PaCoLoss
from .supcon import SupConLoss
from .dscl import DSCLLoss
from .pbsd import PBSDLoss
from .balanced import BalancedSoftmaxLoss
from .ce import CELoss
from .focal import FocalLoss
from .class_balanced import ClassBalancedLoss, effective_number_weights
from .ldam import LDAMLoss, ldam_margins
from .pixel_paco import PixelPaCoLoss
