"""Publishing the papers' zoo end to end against the local Hub stand-in (tests/_hub_server.py), and the published
tag loading back with pretrained=True, as a download from that Hub."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import timm_paco  # noqa: F401
from timm_paco.hub.__main__ import main as hub_main
from timm_paco.hub.zoo_publish import publish_zoo

from _hub_server import LocalHub
from test_convert import _seed_resnet_checkpoint

TOKEN = 'hf_local_test_token'
TAG = 'paco_resnet50.imagenet_lt'
TINY = dict(layers=(1, 1, 1, 1))


def _load_from_hub(tmp_path, endpoint, script):
    env = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / 'hf_home'))
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(script)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_publish_zoo_then_pretrained_true_downloads_it(tmp_path):
    src_dir = tmp_path / 'downloads'
    src_dir.mkdir()
    x, ref_logits, _ = _seed_resnet_checkpoint(str(src_dir / f'{TAG}.pth.tar'), gpaco=False, num_classes=1000)
    torch.save(x, tmp_path / 'x.pt')
    logs = []
    with LocalHub() as hub:
        status = publish_zoo(str(src_dir), tags=[TAG, 'gpaco_resnet50.in1k'], token=TOKEN, endpoint=hub.endpoint,
                             log=logs.append, **TINY)
        assert status == {TAG: 'published', 'gpaco_resnet50.in1k': 'missing'}
        assert any('gpaco_resnet50.in1k: no gpaco_resnet50.in1k.pth.tar' in m and 'drive.google.com' in m
                   for m in logs)
        header, files = hub.commit(f'timm-paco/{TAG}')
        assert sorted(files) == ['README.md', 'config.json', 'model.safetensors', 'projector.safetensors']
        assert json.loads(files['config.json'])['architecture'] == 'resnet50'
        card = files['README.md'].decode()
        assert '| Top-1 accuracy (%) | 57.00 |' in card and "the paper's reported top-1 on ImageNet-LT test" in card

        # a re-run skips what is published (no second commit)
        assert publish_zoo(str(src_dir), tags=[TAG], token=TOKEN, endpoint=hub.endpoint, log=logs.append,
                           **TINY) == {TAG: 'skipped'}
        assert sum('/commit/' in r.path for r in hub.requests) == 1

        # pretrained=True downloads the published weights; plain timm reads the repo as resnet50, no plugin
        _load_from_hub(tmp_path, hub.endpoint, f'''
            import torch, timm, timm_paco
            x = torch.load('x.pt')
            model = timm.create_model({TAG!r}, pretrained=True, layers=(1, 1, 1, 1)).eval()
            with torch.no_grad():
                torch.save(model(x), 'zoo.pt')
        ''')
        _load_from_hub(tmp_path, hub.endpoint, f'''
            import sys
            sys.modules['timm_paco'] = None
            import torch, timm
            model = timm.create_model('hf-hub:timm-paco/{TAG}', pretrained=True).eval()
            assert type(model).__name__ == 'ResNet'
            with torch.no_grad():
                torch.save(model(torch.load('x.pt')), 'stock.pt')
        ''')
    for name in ('zoo.pt', 'stock.pt'):
        torch.testing.assert_close(torch.load(tmp_path / name), ref_logits, rtol=0, atol=1e-5)


def test_publish_zoo_bad_input(tmp_path, capsys, monkeypatch):
    with pytest.raises(ValueError, match=r'--only paco_resnet50.nope: not zoo tags'):
        publish_zoo(str(tmp_path), tags=['paco_resnet50.nope'], token=TOKEN)
    assert hub_main(['publish-zoo', str(tmp_path / 'nope'), '--token', TOKEN]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and "SRC_DIR" in err and 'nope' in err
