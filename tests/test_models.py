"""The registered names (plain timm models with the papers' cfgs and recipes), the CIFAR ResNet-32, and the
contrastive module a task builds around any timm model."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from safetensors.torch import save_file

import timm_paco  # noqa: F401  (registers the models)
from timm_paco.models import recipe_for, registered_names, stock_architecture
from timm_paco.tasks import ContrastiveModule, Projector, create_contrastive_module

TINY_RESNET = dict(layers=(1, 1, 1, 1))
TINY_VIT = dict(depth=1, embed_dim=32, num_heads=2, img_size=32)

# name: (stock timm name, task, projector type, projector act, tiny kwargs)
VARIANTS = {
    'paco_resnet32': ('resnet32_cifar', 'paco', 'mlp', 'relu', {}),
    'paco_resnet50': ('resnet50', 'paco', 'mlp', 'relu', TINY_RESNET),
    'paco_resnet101': ('resnet101', 'paco', 'mlp', 'relu', TINY_RESNET),
    'paco_resnet152': ('resnet152', 'paco', 'mlp', 'relu', TINY_RESNET),
    'paco_resnet200': ('resnet200', 'paco', 'mlp', 'relu', TINY_RESNET),
    'paco_resnext50_32x4d': ('resnext50_32x4d', 'paco', 'mlp', 'relu', TINY_RESNET),
    'paco_resnext101_32x4d': ('resnext101_32x4d', 'paco', 'mlp', 'relu', TINY_RESNET),
    'gpaco_resnet50': ('resnet50', 'gpaco', 'mlp3', 'relu', TINY_RESNET),
    'gpaco_resnet152': ('resnet152', 'gpaco', 'mlp3', 'relu', TINY_RESNET),
    'gpaco_resnext50_32x4d': ('resnext50_32x4d', 'gpaco', 'mlp3', 'relu', TINY_RESNET),
    'gpaco_resnext101_32x4d': ('resnext101_32x4d', 'gpaco', 'mlp3', 'relu', TINY_RESNET),
    'vit_base_patch16_gpaco_224': ('vit_base_patch16_224', 'gpaco', 'mlp3', 'gelu', TINY_VIT),
    'vit_large_patch16_gpaco_224': ('vit_large_patch16_224', 'gpaco', 'mlp3', 'gelu', TINY_VIT),
    'dscl_resnet32': ('resnet32_cifar', 'dscl', 'mlp2', 'relu', {}),
    'dscl_resnet50': ('resnet50', 'dscl', 'mlp2', 'relu', TINY_RESNET),
    'dscl_resnext50_32x4d': ('resnext50_32x4d', 'dscl', 'mlp2', 'relu', TINY_RESNET),
}


def _input(n=2):
    return torch.randn(n, 3, 32, 32)


def test_every_variant_registered_with_its_recipe():
    assert set(VARIANTS) | {'resnet32_cifar'} == set(registered_names())
    for name, (stock, task, proj_type, act, kwargs) in VARIANTS.items():
        model = timm.create_model(name, num_classes=5, **kwargs)
        extra = dict(global_pool='avg') if 'vit' in name else {}
        plain = timm.create_model(stock, num_classes=5, **kwargs, **extra)
        assert type(model) is type(plain), name
        assert model.pretrained_cfg['architecture'] == name and model.default_cfg is model.pretrained_cfg
        assert model.state_dict().keys() == plain.state_dict().keys()
        recipe = recipe_for(name)
        assert (recipe.task, recipe.proj_type, recipe.proj_act) == (task, proj_type, act)
        assert stock_architecture(name) == stock and stock_architecture('resnet18') == 'resnet18'
        module = create_contrastive_module(model)
        assert module.projector.config['proj_type'] == proj_type and module.projector.config['act_layer'] == act
        assert module.proj_dim == (32 if name == 'paco_resnet32' else 128)
        assert len(module.projector) == {'mlp': 4, 'mlp2': 3, 'mlp3': 5}[proj_type]
        # a layout given explicitly keeps the recipe's activation when it is the recipe's layout (as the seeds)
        other = 'mlp' if proj_type == 'mlp3' else 'mlp3'
        assert create_contrastive_module(model, proj_type=proj_type).projector.config['act_layer'] == act
        assert create_contrastive_module(model, proj_type=other).projector.config['act_layer'] == (
            'relu' if other == 'mlp' else 'gelu')


def test_pretrained_cfgs_carry_reported_top1_and_class_counts():
    cfg = timm.models.get_pretrained_cfg('paco_resnet50.imagenet_lt')
    assert 'top1: 57.0' in cfg.notes and cfg.num_classes == 1000
    assert cfg.classifier == 'fc' and cfg.first_conv == 'conv1'
    assert timm.models.get_pretrained_cfg('paco_resnet152.places_lt').num_classes == 365
    assert timm.models.get_pretrained_cfg('gpaco_resnet50.inat2018').num_classes == 8142
    vit = timm.models.get_pretrained_cfg('vit_base_patch16_gpaco_224.in1k')
    assert 'top1: 84.0' in vit.notes and vit.classifier == 'head' and vit.first_conv == 'patch_embed.proj'
    tagged = timm.list_pretrained('*paco_*')
    assert len(tagged) == 18 and 'vit_large_patch16_gpaco_224.in1k' in tagged
    for tag in tagged:
        notes = timm.models.get_pretrained_cfg(tag).notes
        top1 = float(notes[0].split(':')[1])
        assert 40.0 < top1 < 90.0, tag


@pytest.mark.parametrize('name', ['paco_resnet32', 'gpaco_resnet50', 'vit_base_patch16_gpaco_224'])
def test_contrastive_module_logits_equal_the_model_and_embeddings(name):
    kwargs = VARIANTS[name][4]
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7, **kwargs)
    module = create_contrastive_module(model)
    x = _input()
    for train in (False, True):
        module.train(train)
        with torch.no_grad():
            ref = model(x)
            logits, emb = module(x)
            pre = model.forward_head(model.forward_features(x), pre_logits=True)
            ref_emb = F.normalize(module.projector(pre), dim=1)
        assert torch.equal(logits, ref)
        assert emb.shape == (2, module.proj_dim)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
        torch.testing.assert_close(emb, ref_emb)


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
    """timm's loader adapts a pretrained file: input channels, no classifier, a new class count; a classifier that
    fits the model but not the cfg's class count would be dropped, so it is refused."""
    torch.manual_seed(2)
    source = timm.create_model('paco_resnet32', num_classes=10).eval()
    weights = source.state_dict()
    path = str(tmp_path / 'w.safetensors')
    save_file({k: v.contiguous() for k, v in weights.items()}, path)
    file = dict(file=path, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    gray = timm.create_model('paco_resnet32', pretrained=True, in_chans=1, num_classes=10, pretrained_cfg_overlay=file)
    torch.testing.assert_close(gray.conv1.weight[:, 0], source.conv1.weight.sum(dim=1))
    pooled = timm.create_model('paco_resnet32', pretrained=True, num_classes=0, pretrained_cfg_overlay=file).eval()
    with torch.no_grad():
        assert torch.equal(pooled(x), source.forward_head(source.forward_features(x), pre_logits=True))
    with pytest.raises(ValueError, match=r"classifier has num_classes=10 like the model, but the pretrained cfg says "
                                         r"100, so timm would drop the trained class centres"):
        timm.create_model('paco_resnet32', pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(file=path))
    save_file({k: v.contiguous() for k, v in dict(weights, **{'conv1.weight': torch.randn(8, 3, 3, 3)}).items()}, path)
    with pytest.raises(ValueError, match=r'conv1.weight: \(8, 3, 3, 3\) vs \(16, 1, 3, 3\)'):
        timm.create_model('paco_resnet32', pretrained=True, in_chans=1, num_classes=10, pretrained_cfg_overlay=file)


@pytest.mark.parametrize('name,kwargs,proj_type', [
    ('convnext_atto', {}, 'mlp'),
    ('efficientnet_b0', {}, 'mlp'),
    ('mobilenetv3_small_100', {}, 'mlp'),  # a conv head: head_hidden_size 1024 > num_features 576
    ('swin_tiny_patch4_window7_224',
     dict(img_size=32, window_size=2, embed_dim=16, depths=(1, 1), num_heads=(1, 1)), 'mlp3'),
])
def test_contrastive_module_on_any_timm_model(name, kwargs, proj_type):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=6, **kwargs).eval()
    module = create_contrastive_module(model, proj_dim=16).eval()
    assert module.projector.proj_type == proj_type
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, emb = module(x)
        ref = model(x)
    assert torch.equal(logits, ref) and emb.shape == (2, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    assert module.projector[0].in_features == model.get_classifier().in_features == model.head_hidden_size


def test_contrastive_module_follows_the_model_device_and_dtype():
    model = timm.create_model('resnet32_cifar', num_classes=3, dtype=torch.float64)
    module = create_contrastive_module(model)
    assert all(p.dtype == torch.float64 for p in module.parameters())
    logits, emb = module.eval()(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert logits.dtype == emb.dtype == torch.float64
    meta = create_contrastive_module(timm.create_model('resnet32_cifar', device='meta'))
    assert all(p.device.type == 'meta' for p in meta.parameters())


def test_resnet32_cifar_structure():
    model = timm.create_model('resnet32_cifar', num_classes=100)
    widths = (16, 32, 64)
    convs = 3 * 16 * 9 + sum(  # stem + 5 blocks x 2 convs per stage, first conv of stages 2/3 widens
        (w // (2 if s else 1)) * w * 9 + w * w * 9 + 4 * 2 * w * w * 9 for s, w in enumerate(widths))
    bns = 2 * 16 + sum(10 * 2 * w for w in widths)
    assert sum(p.numel() for p in model.parameters()) == convs + bns + 64 * 100 + 100 == 470004
    assert [n for n, _ in model.named_children() if n.startswith('layer')] == ['layer1', 'layer2', 'layer3']
    assert [len(getattr(model, f'layer{i}')) for i in (1, 2, 3)] == [5, 5, 5]
    assert model.num_features == 64 and model.in_chans == 3
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 64, 8, 8)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 64)
    model.reset_classifier(10)
    assert model(x).shape == (2, 10) and model.get_classifier().out_features == 10
    assert [i['reduction'] for i in model.feature_info] == [1, 1, 2, 4]


def test_resnet32_cifar_grad_checkpointing_matches():
    torch.manual_seed(0)
    model = timm.create_model('resnet32_cifar', num_classes=4).train()
    x = torch.randn(4, 3, 32, 32)
    ref = model(x)
    ref.sum().backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for p, g in zip(model.parameters(), ref_grads):
        torch.testing.assert_close(p.grad, g)
    taps = model.forward_intermediates(x, intermediates_only=True)
    assert [t.shape[1] for t in taps] == [16, 16, 32, 64]


def test_bad_arguments():
    with pytest.raises(ValueError, match='proj_type'):
        create_contrastive_module(timm.create_model('resnet18'), proj_type='linear')
    with pytest.raises(ValueError, match='already a ContrastiveModule'):
        create_contrastive_module(create_contrastive_module(timm.create_model('resnet32_cifar')))
    with pytest.raises(ValueError, match='act_layer'):
        Projector(8, 4, act_layer='nope')
    with pytest.raises(ValueError, match='not a timm classifier'):
        create_contrastive_module(nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r'projector takes 8 features, the model gives 64'):
        ContrastiveModule(timm.create_model('resnet32_cifar'), Projector(8, 4))
    with pytest.raises(ValueError, match="output_fmt"):
        timm.create_model('resnet32_cifar').forward_intermediates(torch.randn(1, 3, 8, 8), output_fmt='NLC')
    with pytest.raises(ValueError, match='3 stages'):
        timm.create_model('resnet32_cifar', layers=(1, 1), widths=(4, 8))


def test_unpublished_pretrained_tag_is_one_line_naming_the_download(tmp_path):
    """Until a tag's Hub repo exists, pretrained=True says where the authors' weights are and how to convert them
    (a fresh interpreter, offline, with an empty Hub cache)."""
    import os
    import subprocess
    import sys
    script = ("import timm, timm_paco\n"
              "try:\n"
              "    timm.create_model('paco_resnet50.imagenet_lt', pretrained=True)\n"
              "except FileNotFoundError as e:\n"
              "    print(type(e).__name__, e)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    env.update(HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, check=True).stdout
    assert out.count('\n') == 1 and out.startswith('PretrainedWeightsUnavailable paco_resnet50.imagenet_lt: ')
    assert 'timm-paco/paco_resnet50.imagenet_lt' in out
    assert 'https://drive.google.com/file/d/1a73Ez_k47S2hmD_0L-sLH0OEhxK8SpQt' in out
    assert 'python -m timm_paco.convert CKPT OUT --model paco_resnet50.imagenet_lt' in out
    from timm_paco.models.zoo import ZOO
    assert set(ZOO) == set(timm.list_pretrained('*paco_*'))


@pytest.mark.parametrize('old,new', [('gpaco_vit_base_patch16_224', 'vit_base_patch16_gpaco_224'),
                                     ('gpaco_vit_large_patch16_224', 'vit_large_patch16_gpaco_224')])
def test_earlier_gpaco_vit_names_still_build_with_a_warning(old, new):
    # renamed to timm's ViT style so that timm's own suite tests them as ViTs; the old names map to the new ones
    assert old not in timm.list_models() and new in timm.list_models()
    with pytest.warns(UserWarning, match=f'Mapping deprecated model name {old} to current {new}'):
        model = timm.create_model(old, **TINY_VIT)
    assert model.pretrained_cfg['architecture'] == new and model.global_pool == 'avg'


@pytest.mark.parametrize('proj_type,act', [('mlp', 'relu'), ('mlp2', 'relu'), ('mlp3', 'gelu')])
def test_projector_layout_is_read_back_from_its_weights(proj_type, act):
    from timm_paco.tasks.projector_file import projector_args
    projector = Projector(12, 6, proj_type=proj_type, hidden_dim=10)
    args = projector_args(projector.state_dict())
    assert args == dict(in_dim=12, out_dim=6, proj_type=proj_type, hidden_dim=10, act_layer=act)
    rebuilt = Projector(**args)
    rebuilt.load_state_dict(projector.state_dict())
    x = torch.randn(3, 12)
    torch.testing.assert_close(rebuilt.eval()(x), projector.eval()(x))
    with pytest.raises(ValueError, match='projector weights of no known layout'):
        projector_args({'0.weight': torch.zeros(2, 2)})
