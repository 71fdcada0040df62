"""timm_paco.checkpoint_io: the one checkpoint-file reader (safetensors by content, safe pickles, folders)."""
import argparse
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from timm_paco.checkpoint_io import is_safetensors, load_checkpoint_file
from timm_paco.hub import read_checkpoint
from timm_paco.models.checkpoint_filter import adapt_state_dict, check_state_dict
from timm_paco.models import PaCoModel
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


def test_adapt_and_check_between_paco_and_plain():
    plain = ResNetCifar(**TINY, num_classes=3)
    paco = PaCoModel(ResNetCifar(**TINY, num_classes=3), proj_dim=4)
    paco_sd = paco.state_dict()
    into_plain = adapt_state_dict(paco_sd, plain)
    assert sorted(into_plain) == sorted(plain.state_dict())
    assert torch.equal(into_plain['fc.weight'], paco_sd['backbone.fc.weight'])
    into_paco = adapt_state_dict(plain.state_dict(), paco)
    assert sorted(into_paco) == sorted(k for k in paco_sd if not k.startswith('projector.'))
    check_state_dict(into_paco, paco, optional_prefixes=('projector.',))
    with pytest.raises(ValueError, match=r"^ckpt does not match model net: missing keys: projector\.0\.weight"):
        check_state_dict(into_paco, paco, source='ckpt', model_name='net')
    other = ResNetCifar(**TINY, num_classes=5)
    with pytest.raises(ValueError, match=r"class count mismatch: checkpoint classifier has 3 classes, model "
                                         r"built with num_classes=5 \(fc\.weight: checkpoint \(3, 16\) vs "
                                         r"model \(5, 16\)\)$"):
        check_state_dict(plain.state_dict(), other)
    check_state_dict(plain.state_dict(), other, allow_classifier_mismatch=True)
