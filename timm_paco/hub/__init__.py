"""Hugging Face Hub export / push of trained checkpoints (``python -m timm_paco.hub export|push ...``)."""
from .checkpoint import TrainedCheckpoint, read_checkpoint
from .build import build_trained_model
from .export import EXPORT_FORMS, export_checkpoint, export_model, plain_timm_model
from .model_card import model_card, read_results
from .push import push_checkpoint, require_token
