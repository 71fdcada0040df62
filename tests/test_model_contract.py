"""Every registered name is a true timm model: the contract points of timm's own model tests, checked here on tiny
configurations of each architecture."""
import pytest
import torch
import torch.nn as nn
import timm
from timm.models import FeatureGraphNet, create_feature_extractor, get_graph_node_names, get_model_args

import timm_paco  # noqa: F401  (registers the models)
from timm_paco.models import recipe_for, registered_names

TINY_RESNET = dict(layers=(1, 1, 1, 1))
TINY_VIT = dict(depth=3, embed_dim=32, num_heads=2, img_size=32)
TINY = {  # registered name: (stock timm class name, kwargs that keep it small)
    'resnet32_cifar': ('ResNetCifar', {}),
    'paco_resnet32': ('ResNetCifar', {}),
    'dscl_resnet32': ('ResNetCifar', {}),
    **{name: ('ResNet', TINY_RESNET) for name in (
        'paco_resnet50', 'paco_resnet101', 'paco_resnet152', 'paco_resnet200', 'paco_resnext50_32x4d',
        'paco_resnext101_32x4d', 'gpaco_resnet50', 'gpaco_resnet152', 'gpaco_resnext50_32x4d',
        'gpaco_resnext101_32x4d', 'dscl_resnet50', 'dscl_resnext50_32x4d')},
    'vit_base_patch16_gpaco_224': ('VisionTransformer', TINY_VIT),
    'vit_large_patch16_gpaco_224': ('VisionTransformer', TINY_VIT),
}
NAMES = sorted(TINY)


def _create(name, **kwargs):
    return timm.create_model(name, num_classes=5, **dict(TINY[name][1], **kwargs))


def _input(model, n=2):
    return torch.randn(n, model.in_chans, 32, 32)


def test_every_registered_name_is_covered():
    assert registered_names() == NAMES


@pytest.mark.parametrize('name', NAMES)
def test_builds_the_stock_timm_class(name):
    model = _create(name)
    assert type(model).__name__ == TINY[name][0]
    assert not any('projector' in n for n, _ in model.named_modules())
    recipe = recipe_for(name)
    if recipe is not None:
        stock = timm.create_model(recipe.stock_architecture, **get_model_args(model))  # what a Hub export records
        assert type(stock) is type(model)
        assert [(k, v.shape) for k, v in stock.state_dict().items()] == \
            [(k, v.shape) for k, v in model.state_dict().items()]


@pytest.mark.parametrize('name', NAMES)
def test_backward_reaches_every_parameter(name):
    model = _create(name).train()
    model(_input(model)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('chans', [1, 3])
def test_in_chans(name, chans):
    model = _create(name, in_chans=chans).eval()
    assert model.in_chans == chans
    first_conv = model.pretrained_cfg['first_conv']
    assert model.get_submodule(first_conv).weight.shape[1] == chans
    assert model(torch.randn(2, chans, 32, 32)).shape == (2, 5)


@pytest.mark.parametrize('name', NAMES)
def test_device_and_dtype_reach_every_tensor(name):
    meta = _create(name, device='meta')
    assert all(t.device.type == 'meta' for t in list(meta.parameters()) + list(meta.buffers()))
    double = _create(name, dtype=torch.float64).eval()
    assert all(p.dtype == torch.float64 for p in double.parameters())
    assert all(b.dtype == torch.float64 for b in double.buffers() if b.is_floating_point())
    assert double(torch.randn(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize('name', NAMES)
def test_torchscript_fx_and_compile_match_eager(name):
    model = _create(name).eval()
    x = _input(model)
    with torch.no_grad():
        ref = model(x)
        scripted = torch.jit.script(_create(name).eval().requires_grad_(False))
        scripted.load_state_dict(model.state_dict())
        torch.testing.assert_close(scripted(x), ref)
        train_nodes, eval_nodes = get_graph_node_names(model)
        fx = create_feature_extractor(model, return_nodes=[eval_nodes[-1]])
        torch.testing.assert_close(fx(x)[eval_nodes[-1]], ref)
        graph = FeatureGraphNet(_create(name).eval(), out_indices=(len(model.feature_info) - 1,))
        graph.load_state_dict(model.state_dict(), strict=False)
        channel_dim = -1 if TINY[name][0] == 'VisionTransformer' else 1  # a ViT block's output is NLC
        assert graph(x)[-1].shape[channel_dim] == model.feature_info[-1]['num_chs']
        compiled = torch.compile(model, backend='eager')
        torch.testing.assert_close(compiled(x), ref)


@pytest.mark.parametrize('name', NAMES)
def test_forward_intermediates(name):
    model = _create(name).eval()
    x = _input(model)
    n_taps = len(model.feature_info)
    is_vit = TINY[name][0] == 'VisionTransformer'
    with torch.no_grad():
        final, taps = model.forward_intermediates(x)
        assert len(taps) == n_taps
        torch.testing.assert_close(final, model.forward_features(x))
        for tap, info in zip(taps, model.feature_info):
            assert tap.shape[1] == info['num_chs'] and tap.shape[-1] == 32 // info['reduction']
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [t.shape for t in last_two] == [t.shape for t in taps[-2:]]
        picked = model.forward_intermediates(x, indices=[0], intermediates_only=True, stop_early=True)
        torch.testing.assert_close(picked[0], taps[0])
        if is_vit:
            nlc = model.forward_intermediates(x, indices=1, output_fmt='NLC', norm=True, intermediates_only=True)
            assert nlc[0].shape == (2, 4, 32)  # 2x2 patches at 32 px, patch 16; prefix tokens removed
        else:
            with pytest.raises((ValueError, AssertionError)):
                model.forward_intermediates(x, output_fmt='NLC')


@pytest.mark.parametrize('name', NAMES)
def test_prune_intermediate_layers(name):
    model = _create(name).eval()
    x = _input(model)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
        kept = model.prune_intermediate_layers(indices=[1], prune_head=True)
        assert kept == [1]
        pruned = model.forward_intermediates(x, indices=[1], intermediates_only=True)
        torch.testing.assert_close(pruned[0], taps[1])
        assert model.num_classes == 0


@pytest.mark.parametrize('name', NAMES)
def test_features_only(name):
    model = _create(name).eval()
    feats = timm.create_model(name, features_only=True, **TINY[name][1]).eval()
    feats.load_state_dict({k: v for k, v in model.state_dict().items() if k in feats.state_dict()}, strict=False)
    outs = feats(_input(model))
    assert [o.shape[1] for o in outs] == feats.feature_info.channels()
    assert feats.pretrained_cfg['architecture'] == name


POOLS = {'ResNet': ('avg', 'max', 'avgmax', 'catavgmax', ''), 'ResNetCifar': ('avg', 'max', 'avgmax', 'catavgmax', ''),
         'VisionTransformer': ('avg', 'max', 'avgmax', 'token', '')}


@pytest.mark.parametrize('name,pool', [(n, p) for n in NAMES for p in POOLS[TINY[n][0]]])
def test_reset_classifier_keeps_widths(name, pool):
    model = _create(name).eval()
    num_features = model.num_features
    x = _input(model)
    for num_classes in (0,) if pool == '' else (0, 7):  # no pooling: timm's classifiers take pooled features only
        model.reset_classifier(num_classes, pool)
        with torch.no_grad():
            pre = model.forward_head(model.forward_features(x), pre_logits=True)
            out = model(x)
        assert model.num_features == num_features and model.num_classes == num_classes
        if pool == '':
            assert out.shape[:2] == pre.shape[:2]  # unpooled features, no classifier input width
            continue
        assert pre.shape == (2, model.head_hidden_size)
        assert out.shape == (2, num_classes or model.head_hidden_size)
        if num_classes:
            assert model.get_classifier().in_features == model.head_hidden_size


@pytest.mark.parametrize('name', NAMES)
def test_pretrained_cfg_names_real_modules_and_shapes(name):
    model = _create(name)
    cfg = model.pretrained_cfg
    assert cfg['architecture'] == name
    assert isinstance(model.get_submodule(cfg['first_conv']), nn.Conv2d)
    assert model.get_submodule(cfg['classifier']) is model.get_classifier()
    full = timm.create_model(name, pretrained=False, device='meta')
    chans, height, width = cfg['input_size']
    assert chans == full.in_chans == 3
    if cfg.get('pool_size'):
        feats = torch.empty(1, full.num_features, *cfg['pool_size'], device='meta')
        expected = full.forward_features(torch.empty(1, chans, height, width, device='meta'))
        assert expected.shape == feats.shape
