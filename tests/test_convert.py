"""Seed checkpoint conversion: key layouts, logits equality, timm's loading path, bad input."""
import argparse
import copy
import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
import torchvision
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

import timm_paco  # noqa: F401
from timm_paco.convert import convert_checkpoint, infer_model_name, load_checkpoint, main
from timm_paco.models import ResNetCifar, recipe_for, registered_names
from timm_paco.tasks import Projector, attach_projector

TINY_RESNET = dict(layers=(1, 1, 1, 1))
TINY_VIT = dict(img_size=32, embed_dim=32, depth=2, num_heads=2)


class SeedMoCo(nn.Module):
    """The seeds' MoCo wrapper layout: encoder_q with its fc replaced by the projection MLP, key encoder,
    class centres ``linear`` (+ ``linear_k`` for PaCo), queue buffers; logits from the pooled features
    caught by a hook on the encoder's second-to-last child, as the seeds do."""

    def __init__(self, encoder: nn.Module, feat_dim: int, num_classes: int, gpaco: bool):
        super().__init__()
        self.encoder_q = encoder
        d, dim = encoder.fc.in_features, encoder.fc.out_features
        if gpaco:
            encoder.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), encoder.fc)
        else:
            encoder.fc = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(), encoder.fc)
            self.encoder_k = copy.deepcopy(encoder)
            self.linear_k = nn.Linear(feat_dim, num_classes)
        self.linear = nn.Linear(feat_dim, num_classes)
        self.register_buffer('queue', F.normalize(torch.randn(16, dim), dim=1))
        self.register_buffer('queue_l', torch.randint(0, num_classes, (16,)))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))
        list(encoder.children())[-2].register_forward_hook(lambda m, i, o: setattr(self, 'pooled', o.flatten(1)))

    def forward(self, x):
        emb = F.normalize(self.encoder_q(x), dim=1)
        return self.linear(self.pooled), emb


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)


def _seed_resnet_checkpoint(path, gpaco, num_classes=10):
    """Seed-layout .pth.tar of a torchvision Bottleneck ResNet (1 block per stage) + its reference outputs."""
    torch.manual_seed(0)
    encoder = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [1, 1, 1, 1], num_classes=128)
    seed = SeedMoCo(encoder, 2048, num_classes, gpaco=gpaco)
    _randomise_bn(seed)
    seed.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, emb = seed(x)
    state = {'module.' + k: v for k, v in seed.state_dict().items()}
    torch.save({'epoch': 400, 'arch': 'resnet50', 'acc': np.float64(57.0), 'state_dict': state,
                'optimizer': {'state': {}, 'param_groups': []}}, path)
    return x, logits, emb


def _seed_cifar_checkpoint(path):
    torch.manual_seed(1)
    seed = SeedMoCo(ResNetCifar(num_classes=32), 64, 100, gpaco=False)
    _randomise_bn(seed)
    seed.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, emb = seed(x)
    torch.save({'arch': 'resnet32', 'state_dict': {'module.' + k: v for k, v in seed.state_dict().items()}}, path)
    return x, logits, emb


@pytest.fixture(scope='module')
def seed_resnet(tmp_path_factory):
    """{gpaco: (path, x, logits, embeddings)}: one PaCo and one GPaCo seed-layout checkpoint."""
    root = tmp_path_factory.mktemp('seeds')
    out = {}
    for gpaco in (False, True):
        path = str(root / f'{"gpaco" if gpaco else "paco"}_moco_ckpt.pth.tar')
        out[gpaco] = (path, *_seed_resnet_checkpoint(path, gpaco))
    return out


@pytest.mark.parametrize('gpaco', [False, True])
def test_seed_resnet_roundtrip_logits_equal(tmp_path, seed_resnet, gpaco):
    dst = str(tmp_path / 'out')
    src, x, ref_logits, ref_emb = seed_resnet[gpaco]
    name = 'gpaco_resnet50' if gpaco else 'paco_resnet50'
    got_name, sd = convert_checkpoint(src, dst, model_name=name, **TINY_RESNET)
    assert got_name == name and not any('encoder_k' in k or 'queue' in k or 'projector' in k for k in sd)
    file = os.path.join(dst, 'model.safetensors')
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=file, num_classes=10),
                              **TINY_RESNET).eval()
    module = attach_projector(model, dst).eval()
    assert module.projector.config['proj_type'] == ('mlp3' if gpaco else 'mlp')
    with torch.no_grad():
        logits, emb = module(x)
        assert torch.equal(model(x), logits)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(emb, ref_emb, rtol=0, atol=1e-5)


def test_mae_vit_roundtrip_logits_equal(tmp_path):
    torch.manual_seed(2)
    vit = VisionTransformer(global_pool='avg', num_classes=10, patch_size=16, **TINY_VIT).eval()
    for p in vit.parameters():
        p.data.normal_(0, 0.2)
    mlp = nn.Sequential(nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 128))
    state = dict(vit.state_dict(), **{'mlp.' + k: v for k, v in mlp.state_dict().items()})
    state.update(queue=torch.randn(8, 128), queue_l=torch.randint(0, 10, (8,)), queue_ptr=torch.zeros(1).long())
    src, dst = str(tmp_path / 'checkpoint-99.pth'), str(tmp_path / 'vit')
    torch.save({'model': state, 'epoch': 99, 'args': argparse.Namespace(model='vit_base_patch16')}, src)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # MAE fine-tune forward: mean of patch tokens -> fc_norm -> head / mlp
        h = torch.cat([vit.cls_token.expand(2, -1, -1), vit.patch_embed(x)], dim=1) + vit.pos_embed
        pooled = vit.fc_norm(vit.blocks(h)[:, 1:].mean(dim=1))
        ref_logits, ref_emb = vit.head(pooled), F.normalize(mlp(pooled), dim=1)
    convert_checkpoint(src, dst, model_name='vit_base_patch16_gpaco_224', **TINY_VIT)
    model = timm.create_model('vit_base_patch16_gpaco_224', pretrained=True, **TINY_VIT,
                              pretrained_cfg_overlay=dict(file=os.path.join(dst, 'model.safetensors'), num_classes=10))
    module = attach_projector(model.eval(), dst).eval()
    assert module.projector.config['act_layer'] == 'gelu'
    with torch.no_grad():
        logits, emb = module(x)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(emb, ref_emb, rtol=0, atol=1e-5)


@pytest.mark.filterwarnings('ignore:.*found in sys.modules:RuntimeWarning')
def test_cli_infers_model_and_writes_file_and_folder(tmp_path, capsys, monkeypatch):
    src = str(tmp_path / 'cifar.pth.tar')
    x, ref_logits, ref_emb = _seed_cifar_checkpoint(src)
    folder = str(tmp_path / 'converted')
    monkeypatch.setattr(sys, 'argv', ['python -m timm_paco.convert', src, folder])
    with pytest.raises(SystemExit) as exit_info:  # what `python -m timm_paco.convert SRC DST` runs
        runpy.run_module('timm_paco.convert', run_name='__main__', alter_sys=True)
    assert exit_info.value.code == 0 and 'paco_resnet32' in capsys.readouterr().out
    config = json.load(open(os.path.join(folder, 'config.json')))
    assert config['architecture'] == 'paco_resnet32' and config['num_classes'] == 100
    model = timm.create_model('local-dir:' + folder, pretrained=True).eval()
    with torch.no_grad():
        logits, emb = attach_projector(model, folder).eval()(x)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(emb, ref_emb, rtol=0, atol=1e-5)

    file = str(tmp_path / 'w.safetensors')
    assert main([src, file]) == 0 and 'paco_resnet32' in capsys.readouterr().out
    model = timm.create_model('paco_resnet32', pretrained=True, pretrained_cfg_overlay=dict(file=file)).eval()
    with torch.no_grad():
        assert torch.equal(model(x), logits)
    # timm's own adaptation: a different class count drops only the class centres
    five = timm.create_model('paco_resnet32', pretrained=True, num_classes=5,
                             pretrained_cfg_overlay=dict(file=file)).eval()
    with torch.no_grad():
        assert torch.equal(five.forward_features(x), model.forward_features(x))
        assert five(x).shape == (2, 5)
    # content-sniffed: a safetensors file is read as such whatever its extension
    renamed = str(tmp_path / 'w.pth')
    os.rename(file, renamed)
    assert torch.equal(load_checkpoint(renamed)['fc.weight'], model.fc.weight)

    # a bad --num-classes is a usage error naming the flag, before the checkpoint is read
    for bad in ('0', 'ten'):
        with pytest.raises(SystemExit) as exit_info:
            main([src, str(tmp_path / 'bad.safetensors'), '--num-classes', bad])
        assert exit_info.value.code == 2 and '--num-classes: expected an integer >= 1' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'bad.safetensors')

    # an existing output is replaced only with --overwrite; a folder's earlier contents go with it
    with pytest.raises(SystemExit) as exit_info:
        main([src, folder])
    assert exit_info.value.code == 2 and f"dst '{folder}' is not empty (config.json, model.safetensors" in \
        capsys.readouterr().err
    open(os.path.join(folder, 'stale.txt'), 'w').close()
    assert main([src, folder, '--overwrite']) == 0
    assert sorted(os.listdir(folder)) == ['config.json', 'model.safetensors', 'projector.safetensors']


def test_bad_checkpoints_raise_one_clear_error(tmp_path, seed_resnet):
    src = seed_resnet[False][0]
    dst = str(tmp_path / 'bad.safetensors')
    with pytest.raises(ValueError, match=r'does not match model paco_resnet50: missing keys: layer1\.1\.'):
        convert_checkpoint(src, dst, model_name='paco_resnet50', layers=(2, 1, 1, 1))  # deeper than the weights
    with pytest.raises(ValueError, match='class count mismatch: .* 10 classes'):
        convert_checkpoint(src, dst, model_name='paco_resnet50', num_classes=1000, **TINY_RESNET)
    with pytest.raises(ValueError, match=r"projector is an 'mlp' one, gpaco_resnet50 trains an 'mlp3' one"):
        convert_checkpoint(src, dst, model_name='gpaco_resnet50', **TINY_RESNET)
    with pytest.raises(ValueError, match=r"model_name 'paco_resnet50.nosuchtag': paco_resnet50 has no pretrained tag "
                                         r"'nosuchtag'; tags: \['paco_resnet50.imagenet_lt'"):
        convert_checkpoint(src, dst, model_name='paco_resnet50.nosuchtag', **TINY_RESNET)
    state = torch.load(src, weights_only=False)['state_dict']
    del state['module.encoder_q.layer2.0.conv1.weight']
    torch.save({'state_dict': state}, str(tmp_path / 'missing.pth'))
    with pytest.raises(ValueError, match=r'missing keys: layer2\.0\.conv1\.weight$'):
        convert_checkpoint(str(tmp_path / 'missing.pth'), dst, model_name='paco_resnet50', **TINY_RESNET)
    assert not os.path.exists(dst)

    with pytest.raises(FileNotFoundError, match='nope.pth'):
        convert_checkpoint(str(tmp_path / 'nope.pth'), dst)
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match="notes.txt' is not a loadable PyTorch checkpoint"):
        convert_checkpoint(str(text), dst)

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / 'pwned'),))
    torch.save({'state_dict': {'w': Payload()}}, str(tmp_path / 'evil.pth'))
    with pytest.raises(ValueError, match='(?i)unsupported global'):
        convert_checkpoint(str(tmp_path / 'evil.pth'), dst)
    assert not (tmp_path / 'pwned').exists()
    torch.save([torch.zeros(1)], str(tmp_path / 'list.pth'))
    with pytest.raises(ValueError, match='expected a dict checkpoint, got list'):
        convert_checkpoint(str(tmp_path / 'list.pth'), dst)
    save_file({'foo.weight': torch.zeros(2)}, str(tmp_path / 'other.safetensors'))
    with pytest.raises(ValueError, match=r'the model is neither a ResNet \(layer\*\) nor a ViT \(patch_embed\)'):
        convert_checkpoint(str(tmp_path / 'other.safetensors'), dst)


def test_timm_loading_path_rejects_wrong_class_count(tmp_path, seed_resnet):
    src, dst = seed_resnet[True][0], str(tmp_path / 'w.safetensors')
    convert_checkpoint(src, dst, model_name='gpaco_resnet50', **TINY_RESNET)
    # the cfg promises 1000 classes, the file holds 10: the filter names the mismatch
    with pytest.raises(ValueError, match='class count mismatch: checkpoint classifier has 10 classes'):
        timm.create_model('gpaco_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file=dst), **TINY_RESNET)


@pytest.mark.parametrize('name', [n for n in registered_names() if recipe_for(n) is not None])
def test_every_registered_architecture_is_read_off_its_weights(name):
    """Shapes alone (meta tensors): the architecture from the model keys, the method from the projector layout
    (PaCo mlp, GPaCo mlp3, DSCL mlp2), the ViTs included; without a projector the candidates are named."""
    model = timm.create_model(name, device='meta')
    recipe = recipe_for(name)
    projector = Projector(model.head_hidden_size, recipe.proj_dim, proj_type=recipe.proj_type).to('meta')
    assert infer_model_name(model.state_dict(), projector.state_dict()) == name
    same_arch = [n for n in registered_names()
                 if recipe_for(n) and recipe_for(n).stock_architecture == recipe.stock_architecture]
    if len(same_arch) == 1:
        assert infer_model_name(model.state_dict(), {}) == name
    else:
        with pytest.raises(ValueError, match=f'holds no projector.*pass --model, one of .*{name}'):
            infer_model_name(model.state_dict(), {})


class SeedDSCL(nn.Module):
    """SY-Xuan/DSCL main.py's layout: encoder_q / encoder_k whose fc became Linear-ReLU-Linear (the projector),
    queue [D, K], main_label_queue [1, K], queue_ptr; no classifier (its first stage trains none)."""

    def __init__(self, make_encoder, width):
        super().__init__()
        self.encoder_q, self.encoder_k = make_encoder(), make_encoder()
        for encoder in (self.encoder_q, self.encoder_k):
            encoder.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), encoder.fc)
        self.register_buffer('queue', F.normalize(torch.randn(128, 16), dim=0))
        self.register_buffer('main_label_queue', torch.randint(0, 10, (1, 16)))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))


def _pooled_and_embedding(encoder, x):
    """The encoder's pooled features (fc removed) and its L2-normalised projector output."""
    with torch.no_grad():
        emb = F.normalize(encoder(x), dim=1)
        fc, encoder.fc = encoder.fc, nn.Identity()
        pooled = encoder(x)
        encoder.fc = fc
    return pooled, emb


@pytest.mark.filterwarnings('ignore:.*found in sys.modules:RuntimeWarning')
def test_dscl_stage_one_converts_to_a_headless_encoder(tmp_path, capsys):
    torch.manual_seed(3)
    seed = SeedDSCL(lambda: ResNetCifar(num_classes=128), 64)
    _randomise_bn(seed)
    seed.eval()
    src = str(tmp_path / 'checkpoint_0199.pth.tar')
    torch.save({'epoch': 200, 'arch': 'resnet32', 'optimizer': {'state': {}, 'param_groups': []},
                'state_dict': {'module.' + k: v for k, v in seed.state_dict().items()}}, src)
    x = torch.randn(2, 3, 32, 32)
    ref_pooled, ref_emb = _pooled_and_embedding(seed.encoder_q, x)
    folder = str(tmp_path / 'stage1')
    assert main([src, folder]) == 0  # read off the weights: CIFAR ResNet-32 + a Linear-ReLU-Linear projector
    out = capsys.readouterr().out
    assert 'dscl_resnet32' in out and 'holds no trained classifier' in out and '--classifier-retrain crt' in out
    config = json.load(open(os.path.join(folder, 'config.json')))
    assert config['architecture'] == 'dscl_resnet32' and config['num_classes'] == 0
    model = timm.create_model('local-dir:' + folder, pretrained=True).eval()
    module = attach_projector(model, folder).eval()
    assert module.projector.config['proj_type'] == 'mlp2'
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref_pooled, rtol=0, atol=1e-5)
        torch.testing.assert_close(module(x)[1], ref_emb, rtol=0, atol=1e-5)


def test_dscl_stage_two_checkpoint_converts_under_its_name(tmp_path):
    """equal_lincls.py's stage 2: a torchvision ResNet with the retrained fc, saved under DDP's module. prefix."""
    torch.manual_seed(4)
    resnet = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [1, 1, 1, 1], num_classes=10)
    _randomise_bn(resnet)
    resnet.eval()
    src = str(tmp_path / 'linear.pth.tar')
    torch.save({'epoch': 40, 'arch': 'resnet50', 'best_acc1': 57.7,
                'state_dict': {'module.' + k: v for k, v in resnet.state_dict().items()}}, src)
    dst = str(tmp_path / 'stage2.safetensors')
    name, _ = convert_checkpoint(src, dst, model_name='dscl_resnet50', **TINY_RESNET)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=dst, num_classes=10),
                              **TINY_RESNET).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), resnet(x), rtol=0, atol=1e-5)
