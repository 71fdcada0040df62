"""timm_paco.checkpoint_io: the one checkpoint-file reader (safetensors by content, safe pickles, folders)."""
import argparse
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from timm_paco.checkpoint_io import is_safetensors, load_checkpoint_file
from timm_paco.hub import read_checkpoint
from timm.models import clean_state_dict

from timm_paco.models.checkpoint_filter import check_state_dict, detect_layout, model_state_dict, split_state_dict
from timm_paco.tasks import Projector
from timm_paco.models.resnet_cifar import ResNetCifar


TINY = dict(layers=(1, 1, 1), widths=(4, 8, 16))


def _tensors():
    return {'a.weight': torch.arange(6.).reshape(2, 3), 'a.bias': torch.tensor([1., -1.])}


def _assert_same(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k])


def test_safetensors_by_content_and_folders(tmp_path):
    sd = _tensors()
    save_file(sd, str(tmp_path / 'w.bin'))  # safetensors content under a pickle-like name
    assert is_safetensors(str(tmp_path / 'w.bin'))
    _assert_same(load_checkpoint_file(str(tmp_path / 'w.bin')), sd)

    torch.save({'state_dict': sd, 'args': argparse.Namespace(model='x'), 'metric': np.float64(71.5)},
               str(tmp_path / 'ckpt.pth.tar'))
    assert not is_safetensors(str(tmp_path / 'ckpt.pth.tar'))
    obj = load_checkpoint_file(str(tmp_path / 'ckpt.pth.tar'))  # Namespace and numpy scalars are allow-listed
    assert obj['args'].model == 'x' and float(obj['metric']) == 71.5
    _assert_same(obj['state_dict'], sd)

    folder = tmp_path / 'hub'
    folder.mkdir()
    torch.save({k: v + 1 for k, v in sd.items()}, str(folder / 'pytorch_model.bin'))
    _assert_same(load_checkpoint_file(str(folder)), {k: v + 1 for k, v in sd.items()})
    save_file(sd, str(folder / 'model.safetensors'))  # preferred over pytorch_model.bin
    _assert_same(load_checkpoint_file(str(folder)), sd)
    with pytest.raises(FileNotFoundError, match=r"checkpoint folder '.*empty' has no model\.safetensors"):
        os.mkdir(tmp_path / 'empty')
        load_checkpoint_file(str(tmp_path / 'empty'))


def test_hub_reader_uses_it(tmp_path):
    sd = _tensors()
    path = str(tmp_path / 'weights.pth')
    save_file({'module.' + k: v for k, v in sd.items()}, path)
    ckpt = read_checkpoint(path)
    _assert_same(ckpt.state_dict, sd)  # DDP prefix removed
    assert ckpt.args == {} and ckpt.epoch is None
    with pytest.raises(ValueError, match=r"weights\.pth': ema=True .* a safetensors file holds a single set"):
        read_checkpoint(path, ema=True)
    torch.save({'state_dict': {'a.weight': torch.zeros(2), 'note': 'text'}}, str(tmp_path / 'mixed.pth'))
    with pytest.raises(ValueError, match=r"mixed\.pth': state dict has entries that are not parameter name -> "
                                         r"tensor: note$"):
        read_checkpoint(str(tmp_path / 'mixed.pth'))


def test_split_state_dict_remaps_every_layout():
    """One remapping: plain timm keys, the MoCo ResNet seeds (key encoder, queue dropped; linear.* -> the
    classifier) and the MAE-ViT seeds (mlp.* -> projector) give the same parts."""
    plain = ResNetCifar(**TINY, num_classes=3)
    model_sd = plain.state_dict()
    projector = Projector(16, 4).state_dict()
    moco = {**{'module.encoder_q.' + k: v for k, v in model_sd.items() if not k.startswith('fc.')},
            **{'module.encoder_q.fc.' + k: v for k, v in projector.items()},
            **{'module.linear.' + k[3:]: v for k, v in model_sd.items() if k.startswith('fc.')},
            **{'module.encoder_k.conv1.weight': torch.zeros(1), 'module.linear_k.weight': torch.zeros(1),
               'module.queue': torch.zeros(4, 2), 'module.queue_l': torch.zeros(4), 'module.queue_ptr': torch.zeros(1)}}
    for layout, sd in (('timm', model_sd), ('moco', moco)):
        assert detect_layout(clean_state_dict(sd)) == layout
        got_model, got_projector = split_state_dict(sd)
        assert sorted(got_model) == sorted(model_sd) and all(torch.equal(got_model[k], model_sd[k]) for k in model_sd)
        assert sorted(got_projector) == (sorted(projector) if layout != 'timm' else [])
        assert model_state_dict(sd, plain).keys() == model_sd.keys()
    vit = {'patch_embed.proj.weight': torch.zeros(1), 'blocks.0.attn.qkv.weight': torch.zeros(1),
           'head.weight': torch.zeros(1), 'mlp.0.weight': torch.ones(1), 'queue': torch.zeros(1)}
    assert detect_layout(vit) == 'mae_vit'
    got_model, got_projector = split_state_dict(vit, classifier='head')
    assert sorted(got_model) == ['blocks.0.attn.qkv.weight', 'head.weight', 'patch_embed.proj.weight']
    assert list(got_projector) == ['0.weight']
    with pytest.raises(ValueError, match=r"unexpected key 'stray'"):
        split_state_dict(dict(moco, stray=torch.zeros(1)))


def test_check_state_dict_names_a_class_count_mismatch():
    plain = ResNetCifar(**TINY, num_classes=3)
    other = ResNetCifar(**TINY, num_classes=5)
    with pytest.raises(ValueError, match=r"class count mismatch: checkpoint classifier has 3 classes, model "
                                         r"built with num_classes=5 \(fc\.weight: checkpoint \(3, 16\) vs "
                                         r"model \(5, 16\)\)$"):
        check_state_dict(plain.state_dict(), other)
    check_state_dict(plain.state_dict(), other, allow_classifier_mismatch=True)
