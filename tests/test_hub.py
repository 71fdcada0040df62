"""Hub export / push / load round trip (timm_paco.hub).

No network: the Hub download is replayed through huggingface_hub's real cache (laid out as a download
lays it out, read with HF_HUB_OFFLINE=1 in a fresh interpreter), the upload goes to the minimal Hub API on
127.0.0.1 in tests/_hub_server.py. Checkpoints as train.py writes them (plain ``state_dict``, the projector in
``task_state``): ``paco_resnet32``, and a timm ``test_resnet`` trained with --task paco (with an EMA).
"""
import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
import timm
from safetensors.torch import load_file

import timm_paco  # noqa: F401  registers the PaCo architectures
from timm_paco.hub import export_checkpoint, push_checkpoint, read_checkpoint
from timm_paco.hub.__main__ import main as hub_main
from timm_paco.hub.export import export_model, is_paco_architecture
from timm_paco.tasks import attach_projector, create_contrastive_module

from _hub_server import COMMIT_OID, LocalHub

RESULTS = {'model': 'test_resnet', 'top1': 81.2345, 'top1_err': 18.7655, 'top5': 99.125, 'top5_err': 0.875,
           'many_acc': 93.5, 'medium_acc': 78.25, 'few_acc': 61.0, 'param_count': 0.37}


def _randomise_bn(model, seed):
    """Non-trivial BN statistics, so eval logits depend on every exported buffer."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def _train_args(model, **kw):
    args = dict(model=model, task='paco', dataset='torch/fashion_mnist', imb_factor=0.01, lr=0.05, epochs=2,
                batch_size=64, opt='sgd', paco_alpha=0.05, paco_beta=1.0, paco_gamma=1.0, paco_temperature=0.2)
    args.update(kw)
    return argparse.Namespace(**args)


def _save_train_checkpoint(path, model, args, ema_model=None, projector=None):
    """A checkpoint laid out like timm's task-based train.py writes it (``projector``: the task's, in task_state)."""
    task_state = {'queue.features': torch.randn(8, 16), 'queue.labels': torch.arange(8)}
    if projector is not None:
        task_state.update(projector=projector.state_dict(), projector_args=projector.config)
    ckpt = {'epoch': 1, 'arch': args.model, 'state_dict': model.state_dict(), 'args': args, 'metric': 42.0,
            'version': 2, 'task_state': task_state}
    if ema_model is not None:
        ckpt['state_dict_ema'] = ema_model.state_dict()
    torch.save(ckpt, path)
    return str(path)


@pytest.fixture(scope='module')
def inputs():
    return torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def _trained(name, seed, **kwargs):
    """A trained model with its projector (``ContrastiveModule``: ``backbone``, ``projector``)."""
    return _randomise_bn(create_contrastive_module(timm.create_model(name, **kwargs), proj_dim=16), seed)


@pytest.fixture(scope='module')
def wrapped(tmp_path_factory, inputs):
    """train.py --model test_resnet --task paco --model-ema."""
    tmp = tmp_path_factory.mktemp('wrapped')
    torch.manual_seed(1)
    model = _trained('test_resnet', 1, num_classes=5, in_chans=1)
    ema = _trained('test_resnet', 2, num_classes=5, in_chans=1)
    path = _save_train_checkpoint(tmp / 'model_best.pth.tar', model.backbone,
                                  _train_args('test_resnet', num_classes=5, in_chans=1), ema.backbone,
                                  projector=model.projector)
    with torch.no_grad():
        logits, embeddings = model(inputs)
        return dict(path=path, model=model, ema=ema, logits=logits, embeddings=embeddings,
                    ema_logits=ema(inputs)[0], tmp=tmp)


@pytest.fixture(scope='module')
def paco32(tmp_path_factory, inputs):
    """train.py --model paco_resnet32 (registered PaCo variant), one input channel."""
    tmp = tmp_path_factory.mktemp('paco32')
    torch.manual_seed(3)
    model = _randomise_bn(timm.create_model('paco_resnet32', num_classes=10, in_chans=1), 3)
    module = _randomise_bn(create_contrastive_module(model), 5)
    path = _save_train_checkpoint(
        tmp / 'last.pth.tar', model, _train_args('paco_resnet32', num_classes=10, in_chans=1, imb_factor=0.1),
        projector=module.projector)
    with torch.no_grad():
        return dict(path=path, model=model, logits=model(inputs), embeddings=module(inputs)[1], tmp=tmp)


def _populate_hf_cache(folder, cache_dir, repo_id):
    """Lay ``folder`` out in huggingface_hub's cache as a download of ``repo_id`` at main would:
    blobs named by content hash (sha256 for LFS files, git blob sha1 for the rest), snapshot files as
    relative symlinks into blobs, refs/main holding the commit hash."""
    repo_dir = os.path.join(cache_dir, 'models--' + repo_id.replace('/', '--'))
    commit = hashlib.sha1(repo_id.encode() + b'-export').hexdigest()
    snapshot = os.path.join(repo_dir, 'snapshots', commit)
    os.makedirs(os.path.join(repo_dir, 'blobs'))
    os.makedirs(snapshot)
    os.makedirs(os.path.join(repo_dir, 'refs'))
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), 'rb') as f:
            data = f.read()
        if name.endswith('.safetensors'):
            blob = hashlib.sha256(data).hexdigest()
        else:
            blob = hashlib.sha1(b'blob %d\0' % len(data) + data).hexdigest()
        blob_path = os.path.join(repo_dir, 'blobs', blob)
        with open(blob_path, 'wb') as f:
            f.write(data)
        os.symlink(os.path.relpath(blob_path, snapshot), os.path.join(snapshot, name))
    with open(os.path.join(repo_dir, 'refs', 'main'), 'w') as f:
        f.write(commit)


def _load_in_fresh_python(tmp, inputs, plain, paco):
    """In a new interpreter with HF_HUB_OFFLINE=1: load the plain-form ``(repo_id, folder)`` through
    ``hf-hub:`` (from the cache) and ``local-dir:`` with timm_paco made unimportable, then allow and import
    timm_paco and load the PaCo form the same two ways. Returns the logits on ``inputs`` and what was imported."""
    hf_home = os.path.join(tmp, 'hf_home')
    for repo_id, folder in (plain, paco):
        _populate_hf_cache(folder, os.path.join(hf_home, 'hub'), repo_id)
    torch.save(inputs, os.path.join(tmp, 'inputs.pt'))
    script = textwrap.dedent(f'''
        import sys
        sys.modules['timm_paco'] = None  # off the path: any import of it raises ImportError
        import torch, timm
        x = torch.load({os.path.join(tmp, 'inputs.pt')!r})
        out = {{}}

        def load(key, name):
            model = timm.create_model(name, pretrained=True).eval()
            with torch.no_grad():
                out[key] = model(x)
            out[key + '_type'] = type(model).__name__

        load('plain_hub', 'hf-hub:{plain[0]}')
        load('plain_local', 'local-dir:{plain[1]}')
        out['plugin_before'] = sys.modules['timm_paco'] is not None
        del sys.modules['timm_paco']
        import timm_paco
        load('paco_hub', 'hf-hub:{paco[0]}')
        load('paco_local', 'local-dir:{paco[1]}')
        torch.save(out, {os.path.join(tmp, 'out.pt')!r})
    ''')
    env = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    env.update(HF_HUB_OFFLINE='1', HF_HOME=hf_home, HF_HUB_CACHE=os.path.join(hf_home, 'hub'))
    proc = subprocess.run([sys.executable, '-c', script], cwd=tmp, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(os.path.join(tmp, 'out.pt'))


def test_timm_form(wrapped, inputs, tmp_path):
    out = export_checkpoint(wrapped['path'], str(tmp_path / 'plain'), form='timm', repo_name='org/plain')
    assert sorted(os.listdir(out)) == ['README.md', 'config.json', 'model.safetensors', 'projector.safetensors']
    with open(os.path.join(out, 'config.json')) as f:
        config = json.load(f)
    assert config['architecture'] == 'test_resnet'
    assert config['num_classes'] == 5 and config['pretrained_cfg']['input_size'][0] == 1
    assert 'tag' not in config['pretrained_cfg']  # the ImageNet source tag does not describe these weights
    weights = load_file(os.path.join(out, 'model.safetensors'))
    assert set(weights) == set(wrapped['model'].backbone.state_dict())
    local = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    assert type(local).__name__ == 'ResNet'
    module = attach_projector(local, out).eval()  # the documented way back to the embedding head
    with torch.no_grad():
        assert torch.equal(local(inputs), wrapped['logits'])
        logits, embeddings = module(inputs)
    assert torch.equal(logits, wrapped['logits']) and torch.equal(embeddings, wrapped['embeddings'])
    assert module.projector.config['act_layer'] == 'relu' and module.projector.config['proj_type'] == 'mlp'
    with torch.no_grad():  # or straight from the training checkpoint's task state
        assert torch.equal(attach_projector(local, wrapped['path']).eval()(inputs)[1], wrapped['embeddings'])


def test_paco_form(paco32, inputs, tmp_path):
    out = export_checkpoint(paco32['path'], str(tmp_path / 'paco'), form='paco', repo_name='org/paco32')
    with open(os.path.join(out, 'config.json')) as f:
        assert json.load(f)['architecture'] == 'paco_resnet32'
    assert set(load_file(os.path.join(out, 'model.safetensors'))) == set(paco32['model'].state_dict())
    local = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    assert type(local) is type(paco32['model']) and local.pretrained_cfg['architecture'] == 'paco_resnet32'
    for source in (out, paco32['path']):  # the projector from the export folder or the training checkpoint
        with torch.no_grad():
            assert torch.equal(attach_projector(local, source).eval()(inputs)[1], paco32['embeddings'])
    for k, v in paco32['model'].state_dict().items():
        assert torch.equal(local.state_dict()[k], v), k
    with torch.no_grad():
        assert torch.equal(local(inputs), paco32['logits'])


def test_round_trip_through_offline_hf_cache(wrapped, paco32, inputs, tmp_path):
    plain = export_checkpoint(wrapped['path'], str(tmp_path / 'plain'), form='timm', repo_name='org/plain')
    paco = export_checkpoint(paco32['path'], str(tmp_path / 'paco'), form='paco', repo_name='org/paco32')
    loaded = _load_in_fresh_python(str(tmp_path), inputs, ('org/plain', plain), ('org/paco32', paco))
    assert not loaded['plugin_before']
    assert loaded['plain_hub_type'] == loaded['plain_local_type'] == 'ResNet'
    assert torch.equal(loaded['plain_hub'], wrapped['logits']) and torch.equal(loaded['plain_local'], wrapped['logits'])
    assert loaded['paco_hub_type'] == loaded['paco_local_type'] == 'ResNetCifar'
    assert torch.equal(loaded['paco_hub'], paco32['logits']) and torch.equal(loaded['paco_local'], paco32['logits'])


def test_ema_and_safetensors_inputs(wrapped, inputs, tmp_path):
    out = export_checkpoint(wrapped['path'], str(tmp_path / 'ema'), form='timm', ema=True)
    with torch.no_grad():
        logits = timm.create_model(f'local-dir:{out}', pretrained=True).eval()(inputs)
    assert torch.equal(logits, wrapped['ema_logits']) and not torch.equal(logits, wrapped['logits'])
    assert 'EMA' in open(os.path.join(out, 'README.md')).read()

    # a bare .safetensors state dict: no args, so the architecture comes from model_name and the
    # class count / channels are read off the weights
    st_path = str(tmp_path / 'weights.safetensors')
    from safetensors.torch import save_file
    save_file(wrapped['model'].backbone.state_dict(), st_path)
    out = export_checkpoint(st_path, str(tmp_path / 'st'), model_name='test_resnet', form='timm')
    with torch.no_grad():
        assert torch.equal(timm.create_model(f'local-dir:{out}', pretrained=True).eval()(inputs), wrapped['logits'])


def test_model_card(wrapped, tmp_path):
    results_file = tmp_path / 'results.json'
    results_file.write_text(json.dumps(RESULTS))
    out = export_checkpoint(wrapped['path'], str(tmp_path / 'card'), form='timm', results_file=str(results_file),
                            repo_name='org/paco-test-resnet')
    card = open(os.path.join(out, 'README.md')).read()
    assert card.startswith('---\n') and 'library_name: timm' in card and '- fashion_mnist' in card
    assert '# Model card for org/paco-test-resnet' in card
    assert 'PaCo (Parametric Contrastive Learning)' in card and 'ICCV 2021' in card
    assert 'imbalance factor 0.01' in card and '| `paco_alpha` | 0.05 |' in card and '| `lr` | 0.05 |' in card
    for label, value in (('Top-1 accuracy (%)', '81.23'), ('Top-5 accuracy (%)', '99.12'),
                         ('Many-shot top-1 (%)', '93.50'), ('Medium-shot top-1 (%)', '78.25'),
                         ('Few-shot top-1 (%)', '61.00')):
        assert f'| {label} | {value} |' in card
    assert "timm.create_model('hf-hub:org/paco-test-resnet', pretrained=True)" in card
    assert 'import timm_paco' not in card  # the plain form needs no plugin
    assert '\nlicense: apache-2.0\n' in card  # trained from scratch

    # validate.py's default csv results file gives the same table
    (tmp_path / 'results.csv').write_text(','.join(RESULTS) + '\n' + ','.join(map(str, RESULTS.values())) + '\n')
    out = export_checkpoint(wrapped['path'], str(tmp_path / 'card_csv'), form='timm',
                            results_file=str(tmp_path / 'results.csv'), repo_name='org/paco-test-resnet')
    assert open(os.path.join(out, 'README.md')).read() == card


def test_model_card_licence_of_fine_tuned_weights(paco32, tmp_path):
    # paco_resnet32's cfg licence is the seeds' MIT: weights fine-tuned from them (--pretrained) keep it
    checkpoint = torch.load(paco32['path'], weights_only=False)
    checkpoint['args'] = argparse.Namespace(**dict(vars(checkpoint['args']), pretrained=True))
    torch.save(checkpoint, tmp_path / 'tuned.pth.tar')
    assert timm.create_model('paco_resnet32').pretrained_cfg['license'] == 'mit'
    for path, licence in ((paco32['path'], 'apache-2.0'), (str(tmp_path / 'tuned.pth.tar'), 'mit')):
        out = export_checkpoint(path, str(tmp_path / licence), form='paco')
        assert f'\nlicense: {licence}\n' in open(os.path.join(out, 'README.md')).read()


class NotACheckpoint:
    pass


def _bad_checkpoints(wrapped, tmp):
    sd = dict(wrapped['model'].backbone.state_dict())
    sd.pop('fc.weight')
    torch.save({'state_dict': sd, 'args': _train_args('test_resnet', num_classes=5, in_chans=1)}, tmp / 'missing.pth')
    torch.save([1, 2, 3], tmp / 'list.pth')
    with open(tmp / 'object.pth', 'wb') as f:
        pickle.dump(NotACheckpoint(), f, protocol=2)
    (tmp / 'noise.pth').write_bytes(b'not a checkpoint at all')
    torch.save({'state_dict': dict(wrapped['model'].backbone.state_dict())}, tmp / 'no_ema.pth')
    return tmp


@pytest.mark.parametrize('case, kwargs, match', [
    ('wrong_arch', dict(model_name='test_efficientnet'),
     r"does not match model test_efficientnet: .*missing keys: conv_stem"),
    ('wrong_classes', dict(num_classes=7),
     r"does not match model test_resnet: .*class count mismatch: checkpoint classifier has 5 classes.*num_classes=7"),
    ('missing_keys', dict(path='missing.pth'),
     r"missing\.pth' does not match model test_resnet: .*missing keys: fc\.weight$"),
    ('list_pickle', dict(path='list.pth'), r"list\.pth' holds a list, expected a train\.py checkpoint"),
    ('object_pickle', dict(path='object.pth'), r"object\.pth' is not a loadable PyTorch checkpoint with weights_only"),
    ('noise', dict(path='noise.pth'), r"noise\.pth' is not a loadable PyTorch checkpoint"),
    ('no_ema', dict(path='no_ema.pth', ema=True, model_name='test_resnet'), r"ema=True but it has no 'state_dict_ema'"),
    ('paco_form_of_wrapped', dict(form='paco'), r"form='paco': architecture 'test_resnet' is not a registered PaCo"),
    ('bad_form', dict(form='onnx'), r"form: expected one of \('timm', 'paco'\)"),
    ('bad_tag', dict(model_name='test_resnet.badtag'), r"model_name 'test_resnet.badtag': test_resnet has no "
                                                        r"pretrained tag 'badtag'"),
])
def test_bad_input(wrapped, tmp_path, case, kwargs, match):
    tmp = _bad_checkpoints(wrapped, tmp_path)
    kwargs = dict(kwargs)
    path = str(tmp / kwargs.pop('path')) if 'path' in kwargs else wrapped['path']
    kwargs.setdefault('form', 'timm')
    with pytest.raises(ValueError, match=match):
        export_checkpoint(path, str(tmp / 'out'), **kwargs)
    assert not (tmp / 'out' / 'model.safetensors').exists()


def test_timm_form_keeps_the_trained_preprocessing(tmp_path):
    # gpaco_vit's cfg (ImageNet mean / std, crop 0.875) differs from plain vit_base_patch16_224's default tag
    # (mean / std 0.5, crop 0.9): the plain export must describe the preprocessing the model was trained with
    model = timm.create_model('vit_base_patch16_gpaco_224', num_classes=10, img_size=32, depth=1, embed_dim=32,
                              num_heads=2).eval()
    plain_cfg = timm.create_model('vit_base_patch16_224', pretrained=False).pretrained_cfg
    keys = ('mean', 'std', 'crop_pct', 'interpolation')
    assert any(plain_cfg[k] != model.pretrained_cfg[k] for k in keys)
    export_model(model, str(tmp_path), form='timm')
    with open(tmp_path / 'config.json') as f:
        config = json.load(f)
    assert config['architecture'] == 'vit_base_patch16_224'
    assert {k: config['pretrained_cfg'][k] for k in keys} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in ((k, model.pretrained_cfg[k]) for k in keys)}
    local = timm.create_model(f'local-dir:{tmp_path}', pretrained=True)
    resolved = timm.data.resolve_model_data_config(local)
    assert resolved['input_size'] == (3, 32, 32) and resolved['crop_pct'] == model.pretrained_cfg['crop_pct']
    assert tuple(resolved['mean']) == model.pretrained_cfg['mean'] and 'test_input_size' not in config['pretrained_cfg']


@pytest.mark.parametrize('trained', ['paco_resnet32', 'resnet32_cifar'])
def test_timm_form_of_a_backbone_timm_paco_registers(trained, paco32, inputs, tmp_path):
    # paco_resnet32, and train.py --model resnet32_cifar --task paco, go up as resnet32_cifar; loading needs
    # import timm_paco for the architecture only
    if trained == 'paco_resnet32':
        path, expected = paco32['path'], paco32['logits']
    else:
        torch.manual_seed(4)
        model = _trained('resnet32_cifar', 4, num_classes=10, in_chans=1)
        path = _save_train_checkpoint(tmp_path / 'last.pth.tar', model.backbone,
                                      _train_args('resnet32_cifar', num_classes=10, in_chans=1),
                                      projector=model.projector)
        with torch.no_grad():
            expected = model(inputs)[0]
    if trained == 'resnet32_cifar':  # no PaCo name, so no paco form
        with pytest.raises(ValueError, match="'resnet32_cifar' is not a registered PaCo name"):
            export_checkpoint(path, str(tmp_path / 'paco'), form='paco')
    out = export_checkpoint(path, str(tmp_path / 'out'), form='timm', repo_name='org/r32')
    with open(os.path.join(out, 'config.json')) as f:
        assert json.load(f)['architecture'] == 'resnet32_cifar'
    assert not any(k.startswith(('backbone.', 'projector.')) for k in load_file(os.path.join(out, 'model.safetensors')))
    readme = open(os.path.join(out, 'README.md'), encoding='utf-8').read()
    assert 'import timm_paco' in readme and 'registers' in readme and 'without the plugin' not in readme
    local = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    assert type(local).__name__ == 'ResNetCifar' and local.pretrained_cfg['architecture'] == 'resnet32_cifar'
    with torch.no_grad():
        assert torch.equal(local(inputs), expected)


def test_is_paco_architecture():
    # the names export form='paco' takes: those with a PaCo / GPaCo recipe
    assert is_paco_architecture('paco_resnet32') and is_paco_architecture('vit_base_patch16_gpaco_224')
    assert not is_paco_architecture('resnet32_cifar')  # registered by timm_paco, but plain
    assert not is_paco_architecture('test_resnet') and not is_paco_architecture('no_such_model')


def test_plain_timm_form_card_needs_no_plugin(wrapped, tmp_path):
    out = export_checkpoint(wrapped['path'], str(tmp_path / 'plain'), form='timm')
    readme = open(os.path.join(out, 'README.md'), encoding='utf-8').read()
    assert 'without the plugin' in readme and 'import timm_paco' not in readme
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        read_checkpoint(str(tmp_path / 'nope.pth'))


def test_cli(wrapped, tmp_path, capsys):
    assert hub_main(['export', wrapped['path'], str(tmp_path / 'cli'), '--form', 'timm', '--ema']) == 0
    assert torch.equal(load_file(str(tmp_path / 'cli' / 'model.safetensors'))['fc.weight'],
                       wrapped['ema'].backbone.state_dict()['fc.weight'])
    assert hub_main(['export', wrapped['path'], str(tmp_path / 'cli2'), '--model', 'test_efficientnet']) == 2
    assert "error: checkpoint" in capsys.readouterr().err


def test_push_without_token(wrapped, tmp_path, monkeypatch):
    import huggingface_hub.constants
    for var in ('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_OIDC_RESOURCE'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_TOKEN_PATH', str(tmp_path / 'token'))
    with pytest.raises(ValueError, match=r'token: no Hugging Face token found.*HF_TOKEN.*hf auth login'):
        push_checkpoint(wrapped['path'], 'org/name', form='timm', endpoint='http://127.0.0.1:9')


def test_push_to_local_hub(wrapped, tmp_path):
    with LocalHub() as hub:
        info = push_checkpoint(
            wrapped['path'], 'org/name', form='timm', private=True, revision='v1', commit_message='PaCo weights',
            token='hf_local_test_token', endpoint=hub.endpoint)
    assert info.oid == COMMIT_OID
    paths = [r.path for r in hub.requests]
    assert paths[0] == '/api/repos/create' and '/api/models/org/name/branch/v1' in paths
    assert all(r.authorization == 'Bearer hf_local_test_token' for r in hub.requests)
    create = hub.created_repo()
    assert create['name'] == 'name' and create['organization'] == 'org' and create['visibility'] == 'private'

    assert paths[-1] == '/api/models/org/name/commit/v1'
    header, uploaded = hub.commit('org/name', 'v1')
    assert header['summary'] == 'PaCo weights'
    expected = export_checkpoint(wrapped['path'], str(tmp_path / 'expected'), form='timm', repo_name='org/name')
    assert sorted(uploaded) == ['README.md', 'config.json', 'model.safetensors', 'projector.safetensors']
    for name, data in uploaded.items():
        with open(os.path.join(expected, name), 'rb') as f:
            assert data == f.read(), name


@pytest.mark.parametrize('name,kwargs,stock', [
    ('paco_resnet50', dict(layers=(1, 1, 1, 1)), 'ResNet'),
    ('dscl_resnet50', dict(layers=(1, 1, 1, 1)), 'ResNet'),  # DSCL's Linear-ReLU-Linear projector beside it
    ('vit_base_patch16_gpaco_224', dict(img_size=32, depth=1, embed_dim=32, num_heads=2), 'VisionTransformer'),
])
def test_export_of_a_registered_name_loads_with_timm_alone(name, kwargs, stock, tmp_path):
    """The default export of paco_resnet50 / a GPaCo ViT is the stock timm architecture: a Python process in which
    timm_paco cannot be imported loads it (local-dir: and the offline hf-hub: cache) with the same logits."""
    torch.manual_seed(6)
    model = _randomise_bn(timm.create_model(name, num_classes=4, **kwargs), 6)
    path = _save_train_checkpoint(tmp_path / 'last.pth.tar', model,
                                  _train_args(name, num_classes=4, model_kwargs=kwargs),
                                  projector=create_contrastive_module(model).projector)
    out = export_checkpoint(path, str(tmp_path / 'export'), repo_name='org/stock')
    with open(os.path.join(out, 'config.json')) as f:
        assert json.load(f)['architecture'] == {'paco_resnet50': 'resnet50', 'dscl_resnet50': 'resnet50',
                                                'vit_base_patch16_gpaco_224': 'vit_base_patch16_224'}[name]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    hf_home = str(tmp_path / 'hf_home')
    _populate_hf_cache(out, os.path.join(hf_home, 'hub'), 'org/stock')
    torch.save(x, tmp_path / 'x.pt')
    script = textwrap.dedent(f'''
        import sys
        sys.modules['timm_paco'] = None  # not importable in this process
        import torch, timm
        x = torch.load({str(tmp_path / 'x.pt')!r})
        out = {{}}
        for key, source in (('local', 'local-dir:{out}'), ('hub', 'hf-hub:org/stock')):
            model = timm.create_model(source, pretrained=True).eval()
            with torch.no_grad():
                out[key] = model(x)
            out[key + '_type'] = type(model).__name__
        torch.save(out, {str(tmp_path / 'out.pt')!r})
    ''')
    env = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    env.update(HF_HUB_OFFLINE='1', HF_HOME=hf_home, HF_HUB_CACHE=os.path.join(hf_home, 'hub'))
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = torch.load(tmp_path / 'out.pt')
    with torch.no_grad():
        expected = model(x)
    assert loaded['local_type'] == loaded['hub_type'] == stock
    assert torch.equal(loaded['local'], expected) and torch.equal(loaded['hub'], expected)


def test_model_card_licence_of_the_authors_weights_and_of_a_chosen_one(paco32, tmp_path, capsys):
    """The authors' checkpoints keep their cfg's licence (the MAE-based GPaCo ViT's cc-by-nc-4.0, whatever the
    checkpoint's own arguments say) and cannot be relabelled; a train.py run takes the licence the user chooses,
    and the card says where each licence comes from."""
    from timm_paco.hub.license import card_license
    model = timm.create_model('vit_base_patch16_gpaco_224', img_size=32, embed_dim=32, depth=2, num_heads=2)
    assert card_license(model, {'model': 'vit_base_patch16'}) == (  # the MAE code's own args: not a train.py run
        'cc-by-nc-4.0', "the licence of the authors' weights (https://github.com/dvlab-research/"
                        "Parametric-Contrastive-Learning)")
    with pytest.raises(ValueError, match=r"license 'mit': these weights are not a train.py run, so they are the "
                                         r"vit_base_patch16_gpaco_224 weights under their authors' cc-by-nc-4.0"):
        card_license(model, {}, chosen='mit')

    # a train.py run: --license chooses, and the card states it; the authors' seed layout keeps the cfg's (mit)
    out = export_checkpoint(paco32['path'], str(tmp_path / 'chosen'), form='paco', license='cc-by-4.0')
    card = open(os.path.join(out, 'README.md')).read()
    assert '\nlicense: cc-by-4.0\n' in card and '- **License:** cc-by-4.0 (chosen by the exporter)' in card
    bare = tmp_path / 'bare.pth'
    torch.save(torch.load(paco32['path'], weights_only=False)['state_dict'], bare)
    assert hub_main(['export', str(bare), str(tmp_path / 'bare'), '--model', 'paco_resnet32', '--form', 'paco']) == 0
    assert "- **License:** mit (the licence of the authors' weights" in open(tmp_path / 'bare' / 'README.md').read()
    assert hub_main(['export', str(bare), str(tmp_path / 'relabel'), '--model', 'paco_resnet32',
                     '--license', 'apache-2.0']) == 2
    assert "license 'apache-2.0': these weights are not a train.py run" in capsys.readouterr().err
    assert not (tmp_path / 'relabel').exists()
