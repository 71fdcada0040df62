""" PaCoModel: a timm classifier plus a projection MLP, the model shape PaCo and GPaCo train.

The backbone's classifier holds the parametric class centres; the projector maps the same pooled
features to an L2-normalised embedding for the contrastive term. The backbone runs once per call:

    feats = backbone.forward_features(x)
    pre = backbone.forward_head(feats, pre_logits=True)     # [N, head_hidden_size]
    logits = classifier(pre)                                 # == backbone.forward_head(feats)
    emb = normalize(projector(pre))                          # [N, proj_dim], only if asked

``model(x)`` returns logits, so timm's validate / feature code sees a plain classifier;
``model(x, return_embeddings=True)`` returns ``(logits, embeddings)`` through ``forward`` so DDP and
torch.compile see one call. State-dict keys are ``backbone.*`` and ``projector.*``.
"""
import re
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import timm

from .projector import Projector, PROJ_TYPES

__all__ = ['PaCoModel', 'wrap', 'is_transformer_like']


def is_transformer_like(model: nn.Module) -> bool:
    """True if ``model`` contains attention blocks (ViT, DeiT, Swin, EVA, ...), False for CNNs."""
    return any(
        isinstance(m, nn.MultiheadAttention) or 'Attention' in type(m).__name__
        for m in model.modules()
    )


def _split_alternatives(pattern: str):
    """Split a regex at its top-level ``|`` (not inside groups / classes, not escaped)."""
    parts, depth, in_class, escaped, start = [], 0, False, False, 0
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == '\\':
            escaped = True
        elif in_class:
            in_class = ch != ']'
        elif ch == '[':
            in_class = True
        elif ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        elif ch == '|' and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
    return parts + [pattern[start:]]


def _prefix_pattern(pattern, prefix: str):
    """Put a timm group_matcher regex (or nested list / tuple of them) under ``prefix``.

    timm matches these with ``re.match`` (anchored at the start), so every top-level alternative
    gets the prefix: ``'^conv1|bn1'`` -> ``'^backbone\\.conv1|^backbone\\.bn1'``.
    """
    if isinstance(pattern, str):
        escaped = re.escape(prefix)
        return '|'.join('^' + escaped + alt.lstrip('^') for alt in _split_alternatives(pattern))
    if isinstance(pattern, (list, tuple)):
        return type(pattern)(_prefix_pattern(p, prefix) for p in pattern)
    return pattern


class PaCoModel(nn.Module):
    """ A timm backbone with its classifier (class centres) and a projection head.

    Args:
        backbone: timm model with ``forward_features``, ``forward_head(x, pre_logits=True)``,
            ``get_classifier``, ``reset_classifier``, ``num_features`` and ``num_classes``.
        proj_dim: Embedding width D.
        proj_type: ``'mlp'`` (Linear-BN-ReLU-Linear) or ``'mlp3'`` (Linear-act-Linear-act-Linear).
        proj_act: Projector activation, the ``proj_type`` default (relu / gelu) if None.
        proj_hidden_dim: Projector hidden width, the projector's input width if None.
        default_task: Task train.py uses for this model unless ``--task`` says otherwise.

    The projector reads the classifier's input, ``forward_head(pre_logits=True)``, of width
    ``head_hidden_size``: ``num_features`` for most models, wider for models with a conv / MLP head
    before the classifier (MobileNetV3, GhostNet, HGNet, ...).
    """

    def __init__(
            self,
            backbone: nn.Module,
            proj_dim: int = 128,
            proj_type: str = 'mlp',
            proj_act: Optional[str] = None,
            proj_hidden_dim: Optional[int] = None,
            default_task: str = 'paco',
    ):
        super().__init__()
        if isinstance(backbone, PaCoModel):
            raise ValueError('backbone is already a PaCoModel; pass its .backbone to re-wrap it')
        missing = [a for a in ('forward_features', 'forward_head', 'get_classifier', 'reset_classifier')
                   if not callable(getattr(backbone, a, None))]
        if missing or not isinstance(getattr(backbone, 'num_features', None), int):
            raise ValueError(
                f'backbone {type(backbone).__name__} is not a timm classifier: missing '
                f'{missing or ["num_features"]}')
        if not isinstance(backbone.get_classifier(), nn.Module):
            raise ValueError(
                f'backbone {type(backbone).__name__}.get_classifier() must return one module '
                f'(distilled / multi-head models are not supported), got {type(backbone.get_classifier())}')
        if proj_type not in PROJ_TYPES:
            raise ValueError(f'proj_type must be one of {PROJ_TYPES}, got {proj_type!r}')
        self.backbone = backbone
        self.projector = Projector(
            self.head_hidden_size, proj_dim, proj_type=proj_type, hidden_dim=proj_hidden_dim, act_layer=proj_act)
        self.proj_dim = proj_dim
        self.proj_type = proj_type
        self.default_task = default_task
        self.pretrained_cfg = dict(getattr(backbone, 'pretrained_cfg', None) or {})
        self.default_cfg = self.pretrained_cfg

    # --- attributes timm code reads off a classifier ---------------------------------------
    @property
    def num_classes(self) -> int:
        return self.backbone.num_classes

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    @property
    def head_hidden_size(self) -> int:
        return getattr(self.backbone, 'head_hidden_size', self.backbone.num_features)

    @property
    def classifier(self) -> nn.Module:
        """The class centres: the backbone's final linear layer (``nn.Identity`` if num_classes=0)."""
        return self.backbone.get_classifier()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.backbone.get_classifier()

    def reset_classifier(self, num_classes: int, *args, **kwargs) -> None:
        """Replace the class centres (the projector depends only on head_hidden_size and is kept)."""
        self.backbone.reset_classifier(num_classes, *args, **kwargs)

    @torch.jit.ignore
    def no_weight_decay(self):
        fn = getattr(self.backbone, 'no_weight_decay', None)
        return {'backbone.' + n for n in fn()} if fn is not None else set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """Backbone's parameter groups under ``backbone.``; the projector falls in the last group."""
        matcher = self.backbone.group_matcher(coarse=coarse)
        return {k: _prefix_pattern(v, 'backbone.') for k, v in matcher.items()}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    # --- forward ---------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits=pre_logits)

    def forward_embeddings(self, pre_logits: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``[N, proj_dim]`` from pooled features ``[N, head_hidden_size]``."""
        return F.normalize(self.projector(pre_logits), dim=1)

    def forward(
            self,
            x: torch.Tensor,
            return_embeddings: bool = False,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """``x [N, C, H, W]`` -> logits ``[N, num_classes]``, plus embeddings ``[N, proj_dim]`` if asked."""
        pre = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        logits = self.backbone.get_classifier()(pre)
        if not return_embeddings:
            return logits
        return logits, self.forward_embeddings(pre)


def wrap(
        model_or_name: Union[str, nn.Module],
        proj_dim: int = 128,
        proj_type: Optional[str] = None,
        proj_act: Optional[str] = None,
        default_task: str = 'paco',
        **create_kwargs,
) -> PaCoModel:
    """ Wrap any timm classifier (instance or model name) as a PaCoModel.

    ``proj_type=None`` picks by backbone family: attention-based backbones (ViT, DeiT, Swin, ...)
    get the 3-layer GELU MLP (``'mlp3'``), others Linear-BN-ReLU-Linear (``'mlp'``).
    ``create_kwargs`` (``pretrained``, ``num_classes``, ``drop_path_rate``, ...) go to
    ``timm.create_model`` when a name is given. Example::

        model = wrap('convnext_tiny', num_classes=100, pretrained=True)
        logits, emb = model(x, return_embeddings=True)
    """
    if isinstance(model_or_name, str):
        backbone = timm.create_model(model_or_name, **create_kwargs)
        if isinstance(backbone, PaCoModel):
            raise ValueError(f'model_or_name {model_or_name!r} already builds a PaCoModel; use timm.create_model')
    elif isinstance(model_or_name, nn.Module):
        if create_kwargs:
            raise ValueError(
                f'create_kwargs {sorted(create_kwargs)} apply only when model_or_name is a model name')
        backbone = model_or_name
    else:
        raise ValueError(f'model_or_name must be a timm model name or nn.Module, got {type(model_or_name)}')
    if proj_type is None:
        proj_type = 'mlp3' if is_transformer_like(backbone) else 'mlp'
    return PaCoModel(backbone, proj_dim=proj_dim, proj_type=proj_type, proj_act=proj_act, default_task=default_task)
