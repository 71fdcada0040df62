"""``train.py --push-to-hub`` end to end: a real train.py process on real Fashion-MNIST images pushes its best
checkpoint to the local Hub API of tests/_hub_server.py (HF_ENDPOINT on 127.0.0.1, a dummy HF_TOKEN), and
without a token it stops before training."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import torchvision
from safetensors.torch import load_file

from timm_paco.hub import export_checkpoint

from _hub_server import LocalHub

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 4
TOKEN = 'hf_local_test_token'


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory, fmnist_root):
    """Fashion-MNIST PNGs of classes 0-3, timm folder layout: 4 training and 2 validation images each."""
    root = tmp_path_factory.mktemp('fmnist_push')
    dataset = torchvision.datasets.FashionMNIST(fmnist_root, train=True)
    seen = {}
    for index in range(len(dataset)):
        img, label = dataset[index]
        n = seen.get(label, 0)
        if label >= NUM_CLASSES or n >= 6:
            continue
        seen[label] = n + 1
        split = 'train' if n < 4 else 'validation'
        os.makedirs(root / split / str(label), exist_ok=True)
        img.save(root / split / str(label) / f'{index}.png')
        if sum(seen.values()) == 6 * NUM_CLASSES:
            return str(root)


def _hub_env(hf_home, **extra):
    """The parent environment without Hugging Face settings or proxies (so 127.0.0.1 is reached directly)."""
    proxies = ('http_proxy', 'https_proxy', 'all_proxy')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('HF_', 'HUGGING_FACE_')) and k.lower() not in proxies}
    env.update(HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY='1', NO_PROXY='127.0.0.1,localhost',
               OMP_NUM_THREADS='1', PYTHONPATH=REPO, **extra)
    return env


def _train(image_folder, output, env, *extra):
    return subprocess.run(_train_cmd(image_folder, output, *extra), env=env, cwd=output, capture_output=True,
                          text=True, timeout=300)


def _train_cmd(image_folder, output, *extra):
    # --eval-metric top5 with 4 classes is 100 every epoch, and the saver keeps the earlier of equal epochs:
    # the best checkpoint is epoch 0 while last.pth.tar is epoch 1, so the test sees which one was pushed
    return [
        sys.executable, os.path.join(REPO, 'train.py'), '--data-dir', image_folder, '--model', 'test_convnext',
        '--task', 'paco', '--img-size', '32', '--num-classes', str(NUM_CLASSES), '-b', '4', '--lr', '0.02',
        '--warmup-epochs', '0', '--epochs', '2', '--eval-metric', 'top5', '--device', 'cpu', '--workers', '0',
        '--no-prefetcher', '--seed', '0', '--paco-queue-size', '8', '--output', str(output), '--experiment', 'run',
        '--push-to-hub', 'org/name', *extra,
    ]


def test_push_to_hub_uploads_best_checkpoint(image_folder, tmp_path):
    with LocalHub() as hub:
        env = _hub_env(tmp_path / 'hf_home', HF_ENDPOINT=hub.endpoint, HF_TOKEN=TOKEN)
        proc = _train(image_folder, tmp_path, env, '--hub-private', '--hub-revision', 'v1')
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    run = tmp_path / 'run'
    best, last = str(run / 'model_best.pth.tar'), str(run / 'last.pth.tar')
    assert torch.load(best, weights_only=False)['epoch'] == 0 and torch.load(last, weights_only=False)['epoch'] == 1
    assert re.search(rf'Pushed {re.escape(best)} to the Hub: {re.escape(hub.endpoint)}/org/name/commit/', log)

    # every request carried the token; the repo was created private, then the branch, then one commit to it
    assert hub.requests and all(r.authorization == f'Bearer {TOKEN}' for r in hub.requests)
    assert all(r.method == 'POST' for r in hub.requests), [r.path for r in hub.requests]
    paths = [r.path for r in hub.requests]
    assert paths[0] == '/api/repos/create' and paths[-1] == '/api/models/org/name/commit/v1'
    assert paths.index('/api/models/org/name/branch/v1') < paths.index('/api/models/org/name/commit/v1')
    create = hub.created_repo()
    assert (create['organization'], create['name'], create['visibility']) == ('org', 'name', 'private')

    # test_convnext trained with --task paco: it goes up as the plain timm model of the best epoch, with the
    # task's projector beside it
    uploaded = hub.committed_files('org/name', 'v1')
    assert sorted(uploaded) == ['README.md', 'config.json', 'model.safetensors', 'projector.safetensors']
    expected = export_checkpoint(best, str(tmp_path / 'expected'), form='timm', repo_name='org/name')
    for name, data in uploaded.items():
        with open(os.path.join(expected, name), 'rb') as f:
            assert data == f.read(), name
    (tmp_path / 'uploaded.safetensors').write_bytes(uploaded['model.safetensors'])
    weights = load_file(str(tmp_path / 'uploaded.safetensors'))
    best_sd, last_sd = (torch.load(p, weights_only=False)['state_dict'] for p in (best, last))
    assert set(weights) == set(best_sd)
    assert all(torch.equal(v, best_sd[k]) for k, v in weights.items())
    assert not all(torch.equal(v, last_sd[k]) for k, v in weights.items())


def test_push_to_hub_with_model_ema_uploads_the_ema_weights(image_folder, tmp_path):
    with LocalHub() as hub:
        env = _hub_env(tmp_path / 'hf_home', HF_ENDPOINT=hub.endpoint, HF_TOKEN=TOKEN)
        proc = _train(image_folder, tmp_path, env, '--model-ema', '--model-ema-decay', '0.5')
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        uploaded = hub.committed_files('org/name', 'main')
    (tmp_path / 'uploaded.safetensors').write_bytes(uploaded['model.safetensors'])
    weights = load_file(str(tmp_path / 'uploaded.safetensors'))
    best = torch.load(str(tmp_path / 'run' / 'model_best.pth.tar'), weights_only=False)
    ema, raw = best['state_dict_ema'], best['state_dict']
    assert all(torch.equal(v, ema[k]) for k, v in weights.items())
    assert not all(torch.equal(v, raw[k]) for k, v in weights.items())
    (tmp_path / 'projector.safetensors').write_bytes(uploaded['projector.safetensors'])
    projector = load_file(str(tmp_path / 'projector.safetensors'))  # the EMA copy's projector
    assert all(torch.equal(v, best['task_state_ema']['projector'][k]) for k, v in projector.items())


def test_push_to_hub_without_token_stops_before_training(image_folder, tmp_path):
    hf_home = tmp_path / 'empty_hf_home'
    hf_home.mkdir()
    proc = _train(image_folder, tmp_path, _hub_env(hf_home, HF_ENDPOINT='http://127.0.0.1:9'))
    assert proc.returncode == 2, proc.stderr[-3000:]  # argparse's usage error, not a traceback
    assert re.search(r'error: --push-to-hub org/name: token: no Hugging Face token found.*HF_TOKEN.*hf auth login',
                     proc.stderr), proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'run').exists()  # stopped before the output folder (and any training)
    assert list(hf_home.iterdir()) == []


def _wait_for(path, proc, timeout=240):
    start = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - start < timeout, f'{path} did not appear'
        time.sleep(0.2)


@pytest.mark.parametrize('signum, code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_pushes_nothing_and_says_where_to_resume(image_folder, tmp_path, signum, code):
    """Ctrl-C / SIGTERM during a run with --push-to-hub: exit 130 / 143, one line naming the checkpoint to resume
    from, no --result, no request to the Hub, last.pth.tar whole, the folder's lock given back."""
    with LocalHub() as hub:
        env = _hub_env(tmp_path / 'hf_home', HF_ENDPOINT=hub.endpoint, HF_TOKEN=TOKEN)
        cmd = _train_cmd(image_folder, tmp_path, '--epochs', '200')  # the last --epochs wins
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        last = tmp_path / 'run' / 'last.pth.tar'
        _wait_for(last, proc)
        time.sleep(0.5)  # inside a later epoch
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err[-3000:]
        assert hub.requests == []
    name = signal.Signals(signum).name
    assert re.fullmatch(rf'train\.py: interrupted by {name} during epoch \d+ \(its updates are not saved\); resume '
                        rf'with --resume {re.escape(str(last))}', err.rstrip().splitlines()[-1]), err[-2000:]
    assert 'Traceback' not in err and '--result' not in out
    checkpoint = torch.load(last, weights_only=False)
    interrupted = int(re.search(r'during epoch (\d+)', err).group(1))
    assert checkpoint['epoch'] == interrupted - 1  # the last complete epoch
    assert not (tmp_path / 'run' / '.run.lock').exists()
