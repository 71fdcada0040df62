"""PaCoModel, wrap(), the registered variants and the CIFAR ResNet-32."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from timm.models import group_parameters
from safetensors.torch import save_file

import timm_paco  # noqa: F401  (registers the models)
from timm_paco.models import PaCoModel, Projector, wrap

TINY_RESNET = dict(layers=(1, 1, 1, 1))
TINY_VIT = dict(depth=1, embed_dim=32, num_heads=2, img_size=32)

# name: (backbone name, default_task, projector type, tiny kwargs)
VARIANTS = {
    'paco_resnet32': ('resnet32_cifar', 'paco', 'mlp', {}),
    'paco_resnet50': ('resnet50', 'paco', 'mlp', TINY_RESNET),
    'paco_resnet101': ('resnet101', 'paco', 'mlp', TINY_RESNET),
    'paco_resnet152': ('resnet152', 'paco', 'mlp', TINY_RESNET),
    'paco_resnet200': ('resnet200', 'paco', 'mlp', TINY_RESNET),
    'paco_resnext50_32x4d': ('resnext50_32x4d', 'paco', 'mlp', TINY_RESNET),
    'paco_resnext101_32x4d': ('resnext101_32x4d', 'paco', 'mlp', TINY_RESNET),
    'gpaco_resnet50': ('resnet50', 'gpaco', 'mlp3', TINY_RESNET),
    'gpaco_resnet152': ('resnet152', 'gpaco', 'mlp3', TINY_RESNET),
    'gpaco_resnext50_32x4d': ('resnext50_32x4d', 'gpaco', 'mlp3', TINY_RESNET),
    'gpaco_resnext101_32x4d': ('resnext101_32x4d', 'gpaco', 'mlp3', TINY_RESNET),
    'gpaco_vit_base_patch16_224': ('vit_base_patch16_224', 'gpaco', 'mlp3', TINY_VIT),
    'gpaco_vit_large_patch16_224': ('vit_large_patch16_224', 'gpaco', 'mlp3', TINY_VIT),
}


def _input(n=2):
    return torch.randn(n, 3, 32, 32)


def test_every_variant_registered_and_built():
    registered = set(timm.list_models('*paco_*')) | set(timm.list_models('resnet32_cifar'))
    assert set(VARIANTS) | {'resnet32_cifar'} <= registered
    for name, (backbone_name, task, proj_type, kwargs) in VARIANTS.items():
        model = timm.create_model(name, num_classes=5, **kwargs)
        assert isinstance(model, PaCoModel)
        assert model.default_task == task and model.proj_type == proj_type, name
        assert model.pretrained_cfg['architecture'] == name and model.default_cfg is model.pretrained_cfg
        plain = timm.create_model(backbone_name, num_classes=5, **kwargs)
        assert type(model.backbone) is type(plain), name
        assert all(k.startswith(('backbone.', 'projector.')) for k in model.state_dict())
        expected_layers = 4 if proj_type == 'mlp' else 5
        assert len(model.projector) == expected_layers


def test_pretrained_cfgs_carry_reported_top1_and_class_counts():
    cfg = timm.models.get_pretrained_cfg('paco_resnet50.imagenet_lt')
    assert cfg.hf_hub_id == 'timm-paco/paco_resnet50.imagenet_lt'
    assert 'top1: 57.0' in cfg.notes and cfg.num_classes == 1000
    assert cfg.classifier == 'backbone.fc' and cfg.first_conv == 'backbone.conv1'
    assert timm.models.get_pretrained_cfg('paco_resnet152.places_lt').num_classes == 365
    assert timm.models.get_pretrained_cfg('gpaco_resnet50.inat2018').num_classes == 8142
    vit = timm.models.get_pretrained_cfg('gpaco_vit_base_patch16_224.in1k')
    assert 'top1: 84.0' in vit.notes and vit.classifier == 'backbone.head'
    tagged = timm.list_pretrained('*paco_*')
    assert len(tagged) == 18 and 'gpaco_vit_large_patch16_224.in1k' in tagged
    for tag in tagged:
        notes = timm.models.get_pretrained_cfg(tag).notes
        top1 = float(notes[0].split(':')[1])
        assert 40.0 < top1 < 90.0, tag


@pytest.mark.parametrize('name', ['paco_resnet32', 'gpaco_resnet50', 'gpaco_vit_base_patch16_224'])
def test_logits_equal_plain_backbone_and_embeddings(name):
    backbone_name, _, _, kwargs = VARIANTS[name]
    torch.manual_seed(0)
    extra = dict(global_pool='avg') if 'vit' in name else {}
    plain = timm.create_model(backbone_name, num_classes=7, **kwargs, **extra)
    model = timm.create_model(name, num_classes=7, **kwargs)
    model.backbone.load_state_dict(plain.state_dict())
    x = _input()
    for train in (False, True):
        plain.train(train)
        model.train(train)
        with torch.no_grad():
            ref = plain(x)
            logits = model(x)
            logits2, emb = model(x, return_embeddings=True)
            pre = plain.forward_head(plain.forward_features(x), pre_logits=True)
            ref_emb = F.normalize(model.projector(pre), dim=1)
        assert torch.equal(logits, ref) and torch.equal(logits2, ref)
        assert emb.shape == (2, model.proj_dim)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
        torch.testing.assert_close(emb, ref_emb)
    assert torch.equal(model.forward_head(model.forward_features(x)), model(x))


def test_features_only_and_pretrained_features():
    feats = timm.create_model('paco_resnet32', features_only=True)
    outs = feats(torch.randn(2, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [16, 16, 32, 64] and outs[-1].shape[-1] == 8
    assert feats.pretrained_cfg['architecture'] == 'paco_resnet32'
    outs = timm.create_model('paco_resnet50', features_only=True, out_indices=(2, 4), **TINY_RESNET)(
        torch.randn(2, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [512, 2048]


def test_pretrained_file_reaches_features_only(tmp_path):
    torch.manual_seed(1)
    model = timm.create_model('paco_resnet32').eval()
    path = str(tmp_path / 'w.safetensors')
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    feats = timm.create_model('paco_resnet32', features_only=True, pretrained=True,
                              pretrained_cfg_overlay=dict(file=path)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(feats(x)[-1], model.forward_features(x))


def test_pretrained_file_with_timm_adaptations(tmp_path):
    """timm's loader adapts a pretrained file: input channels, no classifier, a new class count; a classifier
    that fits the model but not the cfg's class count would be dropped, so it is refused."""
    torch.manual_seed(2)
    source = timm.create_model('paco_resnet32', num_classes=10).eval()
    path = str(tmp_path / 'w.safetensors')
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    file = dict(file=path, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    gray = timm.create_model('paco_resnet32', pretrained=True, in_chans=1, num_classes=10, pretrained_cfg_overlay=file)
    torch.testing.assert_close(gray.backbone.conv1.weight[:, 0], source.backbone.conv1.weight.sum(dim=1))
    pooled = timm.create_model('paco_resnet32', pretrained=True, num_classes=0, pretrained_cfg_overlay=file).eval()
    with torch.no_grad():
        assert torch.equal(pooled(x), source.forward_head(source.forward_features(x), pre_logits=True))
    with pytest.raises(ValueError, match=r"classifier has num_classes=10 like the model, but the pretrained cfg says "
                                         r"100, so timm would drop the trained class centres"):
        timm.create_model('paco_resnet32', pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(file=path))
    wrong = dict(source.state_dict(), **{'backbone.conv1.weight': torch.randn(8, 3, 3, 3)})
    save_file({k: v.contiguous() for k, v in wrong.items()}, path)
    with pytest.raises(ValueError, match=r'backbone.conv1.weight: \(8, 3, 3, 3\) vs \(16, 1, 3, 3\)'):
        timm.create_model('paco_resnet32', pretrained=True, in_chans=1, num_classes=10, pretrained_cfg_overlay=file)


def test_reset_classifier_keeps_projector():
    model = timm.create_model('paco_resnet32').eval()
    proj = {k: v.clone() for k, v in model.projector.state_dict().items()}
    model.reset_classifier(7)
    x = torch.randn(2, 3, 32, 32)
    logits, emb = model(x, return_embeddings=True)
    assert logits.shape == (2, 7) and model.num_classes == 7 and model.get_classifier().out_features == 7
    assert all(torch.equal(v, model.projector.state_dict()[k]) for k, v in proj.items())
    model.reset_classifier(0)
    pooled, emb = model(x, return_embeddings=True)
    assert pooled.shape == (2, 64) and emb.shape == (2, 32)


@pytest.mark.parametrize('name,kwargs,proj_type', [
    ('convnext_atto', {}, 'mlp'),
    ('efficientnet_b0', {}, 'mlp'),
    ('mobilenetv3_small_100', {}, 'mlp'),  # a conv head: head_hidden_size 1024 > num_features 576
    ('swin_tiny_patch4_window7_224',
     dict(img_size=32, window_size=2, embed_dim=16, depths=(1, 1), num_heads=(1, 1)), 'mlp3'),
])
def test_wrap_any_timm_model(name, kwargs, proj_type):
    torch.manual_seed(0)
    model = wrap(name, proj_dim=16, num_classes=6, **kwargs).eval()
    assert model.proj_type == proj_type and model.pretrained_cfg['architecture'] == name
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, emb = model(x, return_embeddings=True)
        ref = model.backbone(x)
    assert torch.equal(logits, ref) and emb.shape == (2, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    assert model.projector[0].in_features == model.get_classifier().in_features == model.head_hidden_size


def test_resnet32_cifar_structure():
    model = timm.create_model('resnet32_cifar', num_classes=100)
    widths = (16, 32, 64)
    convs = 3 * 16 * 9 + sum(  # stem + 5 blocks x 2 convs per stage, first conv of stages 2/3 widens
        (w // (2 if s else 1)) * w * 9 + w * w * 9 + 4 * 2 * w * w * 9 for s, w in enumerate(widths))
    bns = 2 * 16 + sum(10 * 2 * w for w in widths)
    assert sum(p.numel() for p in model.parameters()) == convs + bns + 64 * 100 + 100 == 470004
    assert [n for n, _ in model.named_children() if n.startswith('layer')] == ['layer1', 'layer2', 'layer3']
    assert [len(getattr(model, f'layer{i}')) for i in (1, 2, 3)] == [5, 5, 5]
    assert model.num_features == 64
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 64, 8, 8)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 64)
    model.reset_classifier(10)
    assert model(x).shape == (2, 10) and model.get_classifier().out_features == 10
    paco = timm.create_model('paco_resnet32')
    assert type(paco.backbone) is type(model) and paco.proj_dim == 32 and paco.num_features == 64


def test_group_matcher_covers_backbone_and_projector():
    model = timm.create_model('paco_resnet32')
    groups = group_parameters(model, model.group_matcher())
    assert set(groups[0]) == {'backbone.conv1.weight', 'backbone.bn1.weight', 'backbone.bn1.bias'}
    assert 'projector.0.weight' in groups[max(groups)]
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))
    vit = timm.create_model('gpaco_vit_base_patch16_224', **TINY_VIT)
    assert {'backbone.pos_embed', 'backbone.cls_token'} <= vit.no_weight_decay()


def test_bad_arguments():
    with pytest.raises(ValueError, match='proj_type'):
        wrap('resnet18', proj_type='linear')
    with pytest.raises(ValueError, match='already a PaCoModel'):
        PaCoModel(timm.create_model('paco_resnet32'))
    with pytest.raises(ValueError, match='create_kwargs'):
        wrap(timm.create_model('resnet32_cifar'), num_classes=3)
    with pytest.raises(ValueError, match='model_or_name'):
        wrap(3)
    with pytest.raises(ValueError, match='act_layer'):
        Projector(8, 4, act_layer='nope')
    with pytest.raises(ValueError, match='not a timm classifier'):
        PaCoModel(nn.Linear(3, 4))
