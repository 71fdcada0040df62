"""timm_paco.seg: GPaCo for semantic segmentation. A segmentation model on any timm encoder (smp decoders, the
``[seg]`` extra) with the pixel projector, the CE + pixel PaCo training task, metrics (torchmetrics), Fashion-MNIST
mosaics, and ``python -m timm_paco.seg``. The loss itself is ``timm_paco.losses.PixelPaCoLoss`` (torch only)."""
from .model import SEG_ARCHS, PaCoSegModel, create_seg_model, pixel_projector
from .task import SegmentationTask
from .metrics import SegMetrics, rare_classes
from .mosaics import MosaicRecipe, SEG_CLASSES, write_mosaics
from .dataset import SegFolder, read_class_names
from .checkpoint import load_seg_model
