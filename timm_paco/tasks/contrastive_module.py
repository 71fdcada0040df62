""" The trainable module of the contrastive tasks: a plain timm model plus the training-only projector.

The model's classifier holds the parametric class centres; the projector maps the same pooled features to an
L2-normalised embedding for the contrastive term. The model runs once per call:

    feats = model.forward_features(x)
    pre = model.forward_head(feats, pre_logits=True)         # [N, head_hidden_size]
    logits = model.get_classifier()(pre)                     # == model.forward_head(feats)
    emb = normalize(projector(pre))                          # [N, proj_dim]

``forward`` returns ``(logits, embeddings)`` so DDP and torch.compile see one call; given PBSD's patches and boxes
it also returns their teacher and student embeddings (``forward_patches``), still in one call. Submodules are named
``backbone`` (the timm model) and ``projector``: the key encoder a PaCo task keeps has these keys. Evaluation,
checkpoints' ``state_dict`` and export use ``backbone`` alone.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm_paco.models.recipes import recipe_act, recipe_for
from .patch_teacher import box_bins, last_feature_map, pool_bins
from .projector import PROJ_TYPES, Projector

__all__ = ['ContrastiveModule', 'create_contrastive_module', 'is_transformer_like', 'place_like']


def is_transformer_like(model: nn.Module) -> bool:
    """True if ``model`` contains attention blocks (ViT, DeiT, Swin, EVA, ...), False for CNNs."""
    return any(isinstance(m, nn.MultiheadAttention) or 'Attention' in type(m).__name__ for m in model.modules())


def _check_timm_classifier(model: nn.Module) -> None:
    if isinstance(model, ContrastiveModule):
        raise ValueError('model is already a ContrastiveModule; pass its .backbone')
    missing = [a for a in ('forward_features', 'forward_head', 'get_classifier', 'reset_classifier')
               if not callable(getattr(model, a, None))]
    if missing or not isinstance(getattr(model, 'num_features', None), int):
        raise ValueError(f'model {type(model).__name__} is not a timm classifier: missing {missing or ["num_features"]}')
    if not isinstance(model.get_classifier(), nn.Module):
        raise ValueError(
            f'model {type(model).__name__}.get_classifier() must return one module (distilled / multi-head models '
            f'are not supported), got {type(model.get_classifier())}')


class ContrastiveModule(nn.Module):
    """ A timm classifier with a projection head: ``x [N, C, H, W] -> (logits [N, classes], embeddings [N, D])``.

    Args:
        model: timm model with ``forward_features``, ``forward_head(x, pre_logits=True)``, ``get_classifier``,
            ``num_features`` and ``head_hidden_size`` (the projector's input width).
        projector: Maps ``[N, head_hidden_size]`` to ``[N, D]``; the output is L2-normalised here.
    """

    def __init__(self, model: nn.Module, projector: Projector):
        super().__init__()
        _check_timm_classifier(model)
        width = getattr(model, 'head_hidden_size', model.num_features)
        if projector.in_dim != width:
            raise ValueError(f'projector takes {projector.in_dim} features, the model gives {width} (head_hidden_size)')
        self.backbone = model
        self.projector = projector

    @property
    def proj_dim(self) -> int:
        return self.projector.out_dim

    def embed(self, pre: torch.Tensor) -> torch.Tensor:
        """Pre-logits ``[N, head_hidden_size]`` -> L2-normalised embeddings ``[N, D]``, normalised in float32
        (at least) under autocast, so unit norms hold to float32 precision for the losses and the queue."""
        out = self.projector(pre)
        return F.normalize(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, dim=1)

    def forward(self, x: torch.Tensor, patches: Optional[torch.Tensor] = None,
                boxes: Optional[torch.Tensor] = None, joint_patches: bool = False) -> Tuple[torch.Tensor, ...]:
        """``x [N, C, H, W] -> (logits, embeddings)``; with ``patches`` and ``boxes``, ``forward_patches``."""
        if patches is not None:
            return self.forward_patches(x, patches, boxes, joint_patches=joint_patches)
        pre = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        return self.backbone.get_classifier()(pre), self.embed(pre)

    def forward_patches(self, x: torch.Tensor, patches: torch.Tensor, boxes: torch.Tensor,
                        joint_patches: bool = False) -> Tuple[torch.Tensor, ...]:
        """PBSD's forward: ``x [B, C, H, W]``, ``patches [L·B, C, p, p]`` patch-major, ``boxes [L, B, 4]`` in
        pixels of ``x`` -> ``(logits [B, classes], embeddings [B, D], teacher [L, B, D] (no gradient),
        student [L, B, D])``: the teacher pools each box on ``x``'s last feature map, the student encodes the
        patch (``patch_teacher``), one forward per patch group of B (the authors' BatchNorm batches) or all
        ``L·B`` patches in one with ``joint_patches``."""
        backbone = self.backbone
        final, fmap, layout = last_feature_map(backbone, x)
        pre = backbone.forward_head(final, pre_logits=True)
        with torch.no_grad():
            bins = box_bins(fmap.detach(), boxes, tuple(x.shape[-2:])).to(final.dtype)
            teacher = self.embed(pool_bins(backbone, bins, layout))
        groups = (patches,) if joint_patches else patches.split(boxes.shape[1])
        student = torch.cat([self.embed(backbone.forward_head(backbone.forward_features(group), pre_logits=True))
                             for group in groups])
        shape = (boxes.shape[0], boxes.shape[1], -1)
        return backbone.get_classifier()(pre), self.embed(pre), teacher.reshape(shape), student.reshape(shape)


def create_contrastive_module(
        model: nn.Module,
        proj_dim: Optional[int] = None,
        proj_type: Optional[str] = None,
        proj_act: Optional[str] = None,
        proj_hidden_dim: Optional[int] = None,
) -> ContrastiveModule:
    """ Put a projector beside any timm classifier.

    Arguments left None take the model's paper recipe (``timm_paco.models.recipe_for``: a registered name such as
    ``vit_base_patch16_gpaco_224`` gets the GPaCo 3-layer GELU projector), else 128-d with the family default:
    attention-based models (ViT, DeiT, Swin, ...) a 3-layer GELU MLP (``'mlp3'``), others Linear-BN-ReLU-Linear.
    The projector is made on the model's device and in its dtype.
    """
    _check_timm_classifier(model)
    architecture = (getattr(model, 'pretrained_cfg', None) or {}).get('architecture')
    recipe = recipe_for(architecture)
    if recipe is not None:
        proj_dim = proj_dim or recipe.proj_dim
        proj_type = proj_type or recipe.proj_type
    if proj_type is None:
        proj_type = 'mlp3' if is_transformer_like(model) else 'mlp'
    if proj_type not in PROJ_TYPES:
        raise ValueError(f'proj_type must be one of {PROJ_TYPES}, got {proj_type!r}')
    width = getattr(model, 'head_hidden_size', model.num_features)
    projector = Projector(width, proj_dim or 128, proj_type=proj_type, hidden_dim=proj_hidden_dim,
                          act_layer=proj_act or recipe_act(architecture, proj_type))
    return ContrastiveModule(model, place_like(projector, model))


def place_like(module: nn.Module, model: nn.Module) -> nn.Module:
    """``module`` moved to ``model``'s device and dtype (those of its first parameter)."""
    weight = next(iter(model.parameters()), None)
    return module.to(device=weight.device, dtype=weight.dtype) if weight is not None else module

