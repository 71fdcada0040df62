""" Builder shared by the registered PaCo / GPaCo variants (timm's ``_create_*`` role).

``build_paco_model(variant, backbone_name, pretrained, **kwargs)`` builds ``PaCoModel`` around
``timm.create_model(backbone_name)`` through timm's ``build_model_with_cfg`` so the variant's
pretrained cfg, ``pretrained_cfg_overlay=dict(file=...)``, class-count / input-channel adaptation and
``checkpoint_filter_fn`` all take timm's normal path. ``features_only=True`` returns the backbone's
own timm feature extractor (carrying the variant's weights when ``pretrained``).
"""
from typing import Optional

import timm
from timm.models import build_model_with_cfg
from timm.models._builder import pretrained_cfg_for_features

from .checkpoint_filter import checkpoint_filter_fn
from .paco_model import PaCoModel

__all__ = ['build_paco_model', 'check_pretrained_tag']

_FEATURE_KWARGS = ('out_indices', 'feature_cls', 'output_fmt', 'flatten_sequential')
_PACO_KWARGS = ('proj_dim', 'proj_type', 'proj_act', 'proj_hidden_dim', 'default_task')


def check_pretrained_tag(name: str) -> None:
    """ValueError naming ``model_name`` when ``name`` (``arch.tag``) has a tag its architecture does not register."""
    arch, _, tag = name.partition('.')
    if not tag:
        return
    tags = timm.list_pretrained(arch + '.*')
    if name not in tags:
        raise ValueError(f'model_name {name!r}: {arch} has no pretrained tag {tag!r}; tags: {tags}')


def _paco_from_backbone(
        backbone_name: str,
        proj_dim: int = 128,
        proj_type: str = 'mlp',
        proj_act: Optional[str] = None,
        proj_hidden_dim: Optional[int] = None,
        default_task: str = 'paco',
        **backbone_kwargs,
) -> PaCoModel:
    backbone = timm.create_model(backbone_name, pretrained=False, **backbone_kwargs)
    return PaCoModel(
        backbone, proj_dim=proj_dim, proj_type=proj_type, proj_act=proj_act,
        proj_hidden_dim=proj_hidden_dim, default_task=default_task)


def build_paco_model(variant: str, backbone_name: str, pretrained: bool = False, **kwargs):
    """Build a registered PaCo variant; kwargs are PaCoModel args plus backbone / timm create args."""
    features_only = kwargs.pop('features_only', False)
    feature_kwargs = {k: kwargs.pop(k) for k in _FEATURE_KWARGS if k in kwargs}
    model = build_model_with_cfg(
        _paco_from_backbone, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        backbone_name=backbone_name,
        **kwargs,
    )
    if not features_only:
        return model
    backbone_kwargs = {
        k: v for k, v in kwargs.items()
        if k not in _PACO_KWARGS and k not in ('pretrained_cfg', 'pretrained_cfg_overlay', 'pretrained_model_args')}
    backbone_kwargs['num_classes'] = model.num_classes
    if pretrained:
        backbone_kwargs['pretrained_cfg_overlay'] = dict(state_dict=model.backbone.state_dict())
    features = timm.create_model(
        backbone_name, pretrained=pretrained, features_only=True, **feature_kwargs, **backbone_kwargs)
    features.pretrained_cfg = pretrained_cfg_for_features(model.pretrained_cfg)
    features.default_cfg = features.pretrained_cfg
    return features
