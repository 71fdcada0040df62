"""validate.py end to end on real Fashion-MNIST images and a short-trained PaCo checkpoint."""
import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.data import create_transform, resolve_data_config
from torchvision.datasets import FashionMNIST

import timm_paco  # noqa: F401
from timm_paco.data import save_class_counts
from timm_paco.eval import load_logits, sweep_logit_adjust
from timm_paco.data.ood import ALEXNET_ERRORS, IMAGENET_C_CORRUPTIONS, imagenet_wnids, subset_mask, subset_wnids

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_COUNTS = [60, 45, 35, 25, 15, 10, 8, 5, 3, 2]  # many > 30: 3 classes, medium 10..30: 3, few < 10: 4
THR = ['--many-shot-thr', '30', '--few-shot-thr', '10']
VAL_PER_CLASS = 10
IMG = ['--img-size', '16']  # small inputs keep the CPU time of these tests low


@contextmanager
def one_thread():
    # a busy shared CPU makes multi-threaded convolutions far slower; restore the setting afterwards
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _load_validate():
    from timm_paco import validate
    return validate


def run_main(validate, argv):
    """validate.main in-process, leaving the global RNG states as they were (validate seeds them)."""
    states = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(), one_thread():
        try:
            return validate.main(argv)
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])


def _transform(model):
    return create_transform(**resolve_data_config({'img_size': 16}, model=model), is_training=False)


@torch.no_grad()
def _recalibrate_bn(model, x):
    # after a few steps the running BN statistics lag the weights: re-estimate them on the training images
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    model(x)


@pytest.fixture(scope='module')
def setup(fmnist_root, tmp_path_factory):
    with one_thread():
        return _setup(fmnist_root, tmp_path_factory)


def _setup(fmnist_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('validate')
    train, test = FashionMNIST(fmnist_root, train=True), FashionMNIST(fmnist_root, train=False)
    train_idx = [i for c, n in enumerate(TRAIN_COUNTS) for i in (train.targets == c).nonzero()[:n, 0].tolist()]
    val_dir = tmp / 'val'
    val_images, split_list = [], []
    for c in range(10):
        os.makedirs(val_dir / str(c))
        for j, i in enumerate((test.targets == c).nonzero()[:VAL_PER_CLASS, 0].tolist()):
            img = test[i][0]
            img.save(val_dir / str(c) / f'{j:03d}.png')
            split_list.append(f'{c}/{j:03d}.png {c}\n')
            val_images.append((img.convert('RGB'), c))

    torch.manual_seed(0)
    model = timm.create_model('paco_resnet32', num_classes=10)
    tf = _transform(model)
    x = torch.stack([tf(train[i][0].convert('RGB')) for i in train_idx])
    y = torch.tensor([int(train.targets[i]) for i in train_idx])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ckpt_dir = tmp / 'run'
    os.makedirs(ckpt_dir)
    paths = []
    g = torch.Generator().manual_seed(0)
    for step in range(10):
        model.train()
        idx = torch.randint(0, len(y), (32,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in (4, 9):
            _recalibrate_bn(model, x)
            path = str(ckpt_dir / f'checkpoint-{step}.pth.tar')
            torch.save({'state_dict': model.state_dict(), 'epoch': step,
                        'args': argparse.Namespace(model='paco_resnet32', num_classes=10)}, path)
            paths.append(path)
    save_class_counts(TRAIN_COUNTS, str(ckpt_dir))
    with open(tmp / 'fmnist_lt_val.txt', 'w') as f:
        f.writelines(split_list)
    return dict(tmp=tmp, val_dir=str(val_dir), val_list=str(tmp / 'fmnist_lt_val.txt'), val_images=val_images,
                ckpts=paths, validate=_load_validate())


def _reference_logits(ckpt, images):
    model = timm.create_model('paco_resnet32', num_classes=10)
    with torch.serialization.safe_globals([argparse.Namespace]):
        model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'])
    model.eval()
    tf = _transform(model)
    with torch.no_grad(), one_thread():
        return model(torch.stack([tf(img) for img, _ in images]))


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_validate_paco_checkpoint_long_tail(setup):
    out = setup['tmp'] / 'out'
    os.makedirs(out)
    results_file = str(out / 'results.json')
    cmd = [sys.executable, os.path.join(REPO, 'validate.py'), '--data-dir', setup['val_dir'],
           '--model', 'paco_resnet32', '--checkpoint', setup['ckpts'][1], '--device', 'cpu', '-b', '64', '-j', '0',
           '--results-file', results_file, '--results-format', 'json', '--metrics-avg', 'macro', *THR, *IMG]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(results_file) as f:
        res = json.load(f)
    assert res['model'] == 'paco_resnet32' and res['img_size'] == 16
    n = 10 * VAL_PER_CLASS
    assert (res['many_count'], res['medium_count'], res['few_count']) == (30, 30, 40)
    assert (res['many_classes'], res['medium_classes'], res['few_classes']) == (3, 3, 4)
    weighted = sum(res[f'{s}_acc'] * res[f'{s}_count'] for s in ('many', 'medium', 'few')) / n
    assert weighted == pytest.approx(res['top1'], abs=1e-3)
    assert res['top1'] > 25.0, 'a short-trained model should beat chance (10%) on Fashion-MNIST'
    assert res['top5'] >= res['top1'] and 'macro_f1_score' in res

    rows = _read_csv(out / 'results_per_class.csv')
    assert [int(r['class_index']) for r in rows] == list(range(10))
    assert [int(r['train_count']) for r in rows] == TRAIN_COUNTS
    assert all(int(r['val_count']) == VAL_PER_CLASS for r in rows)
    assert [r['split'] for r in rows] == ['many'] * 3 + ['medium'] * 3 + ['few'] * 4
    assert sum(int(r['correct']) for r in rows) == pytest.approx(res['top1'] * n / 100, abs=1e-6)
    assert float(rows[0]['accuracy']) == pytest.approx(100 * int(rows[0]['correct']) / VAL_PER_CLASS)
    with open(out / 'results_per_class.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'

    # independent reference: the checkpoint's PaCo model on the same images
    ref = _reference_logits(setup['ckpts'][1], setup['val_images']).argmax(1)
    target = torch.tensor([c for _, c in setup['val_images']])
    assert res['top1'] == pytest.approx(100 * (ref == target).float().mean().item(), abs=1.0)


def test_plain_backbone_name_and_ensemble(setup):
    validate, tmp = setup['validate'], setup['tmp']
    common = ['--data-dir', setup['val_dir'], '--device', 'cpu', '-b', '50', '-j', '0', '--no-prefetcher', *THR, *IMG]
    target = torch.tensor([c for _, c in setup['val_images']])

    plain_csv = str(tmp / 'plain_per_class.csv')
    # plain timm backbone name, PaCo checkpoint, images through an `lt:` split list
    res = run_main(validate, common + ['--model', 'resnet32_cifar', '--checkpoint', setup['ckpts'][0],
                                       '--dataset', 'lt:' + setup['val_list'], '--per-class-file', plain_csv])
    ref0 = _reference_logits(setup['ckpts'][0], setup['val_images'])
    assert res['top1'] == pytest.approx(100 * (ref0.argmax(1) == target).float().mean().item(), abs=1e-3)
    assert res['loss'] == pytest.approx(F.cross_entropy(ref0, target).item(), abs=1e-4)
    correct = [int(r['correct']) for r in _read_csv(plain_csv)]
    assert correct == [int(((ref0.argmax(1) == target) & (target == c)).sum()) for c in range(10)]

    res_ens = run_main(validate, common + ['--model', 'paco_resnet32', '--checkpoint', ','.join(setup['ckpts']),
                                           '--results-file', str(tmp / 'ens.csv')])
    ref1 = _reference_logits(setup['ckpts'][1], setup['val_images'])
    ens_pred = ((ref0 + ref1) / 2).argmax(1)
    assert res_ens['ensemble'] == 2
    assert res_ens['top1'] == pytest.approx(100 * (ens_pred == target).float().mean().item(), abs=1e-3)
    # the loss pins down the averaging: cross-entropy of the mean logits (not of one member, not of mean softmax)
    assert res_ens['loss'] == pytest.approx(F.cross_entropy((ref0 + ref1) / 2, target).item(), abs=1e-4)
    assert abs(res_ens['loss'] - F.cross_entropy(ref0, target).item()) > 1e-3
    row = _read_csv(tmp / 'ens.csv')[0]
    assert float(row['top1']) == pytest.approx(res_ens['top1']) and row['model'] == 'paco_resnet32'


def test_logit_adjust_and_logits_file(setup, tmp_path):
    validate = setup['validate']
    common = ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint', setup['ckpts'][1],
              '--device', 'cpu', '-b', '32', '-j', '0', '--no-prefetcher', *THR, *IMG]
    logits_file = str(tmp_path / 'logits.safetensors')
    per_class = str(tmp_path / 'adjusted_per_class.csv')
    res = run_main(validate, common + ['--logit-adjust', '1', '--logits-file', logits_file,
                                       '--per-class-file', per_class])
    ref = _reference_logits(setup['ckpts'][1], setup['val_images'])
    target = torch.tensor([c for _, c in setup['val_images']])

    # the file holds the model's own logits (before the adjustment), in the dataset's order
    logits, targets = load_logits(logits_file)
    assert torch.equal(targets, target)
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)

    # scored: logits - 1 · log p, p = TRAIN_COUNTS / sum (float64 reference)
    adjusted = ref.double() - torch.log(torch.tensor(TRAIN_COUNTS, dtype=torch.float64) / sum(TRAIN_COUNTS))
    pred = adjusted.argmax(1)
    assert (pred != ref.argmax(1)).sum() >= 5, 'the adjustment must move predictions for this test to bite'
    assert res['logit_adjust'] == 1.0
    assert res['top1'] == pytest.approx(100 * (pred == target).double().mean().item(), abs=1e-3)
    assert res['loss'] == pytest.approx(F.cross_entropy(adjusted, target).item(), abs=1e-4)
    assert [int(r['correct']) for r in _read_csv(per_class)] == [
        int(((pred == target) & (target == c)).sum()) for c in range(10)]
    few = [c for c, n in enumerate(TRAIN_COUNTS) if n < 10]
    assert res['few_acc'] == pytest.approx(100 * (pred == target)[torch.isin(target, torch.tensor(few))]
                                           .double().mean().item(), abs=1e-3)

    # the library sweep over the saved logits agrees with validate.py at tau 1, and with no adjustment at tau 0
    plain = run_main(validate, common)
    assert 'logit_adjust' not in plain
    assert sweep_logit_adjust(logits, targets, TRAIN_COUNTS, [0.0, 1.0]) == pytest.approx(
        [plain['top1'], res['top1']], abs=1e-3)

    with pytest.raises(ValueError, match='--logits-file.*bulk validation of 2 models'):
        run_main(validate, common[:5] + [os.path.dirname(setup['ckpts'][1])] + common[6:]
                 + ['--logits-file', logits_file])
    lonely = str(tmp_path / 'lonely.pth.tar')
    with torch.serialization.safe_globals([argparse.Namespace]):
        torch.save(torch.load(setup['ckpts'][1], weights_only=True), lonely)
    with pytest.raises(ValueError, match='--logit-adjust 0.5 needs the training class counts'):
        run_main(validate, common[:5] + [lonely] + common[6:] + ['--logit-adjust', '0.5'])
    with pytest.raises(ValueError, match='--logit-adjust: the class counts cover 9 classes, but the evaluation '
                                         'scores 10'):
        run_main(validate, common + ['--logit-adjust', '1', '--class-counts',
                                     save_class_counts(TRAIN_COUNTS[:9], str(tmp_path))])


def test_bad_input(setup, tmp_path):
    validate = setup['validate']
    base = ['--device', 'cpu', '-j', '0', '-b', '16', *IMG]
    with pytest.raises(FileNotFoundError, match='--data-dir.*does-not-exist'):
        run_main(validate, base + ['--data-dir', str(tmp_path / 'does-not-exist'), '--model', 'resnet32_cifar',
                                   '--checkpoint', setup['ckpts'][0]])
    ckpt = setup['ckpts'][0]
    with pytest.raises(ValueError, match=r'--checkpoint .*checkpoint-4.pth.tar does not match model resnet32_cifar'):
        run_main(validate, base + ['--data-dir', setup['val_dir'], '--model', 'resnet32_cifar', '--num-classes', '5',
                                   '--checkpoint', ckpt])
    with pytest.raises(ValueError, match=r'does not match model resnet10t'):
        run_main(validate, base + ['--data-dir', setup['val_dir'], '--model', 'resnet10t', '--checkpoint', ckpt])
    lonely = str(tmp_path / 'lonely.pth.tar')
    with torch.serialization.safe_globals([argparse.Namespace]):
        torch.save(torch.load(ckpt, weights_only=True), lonely)
    with pytest.raises(FileNotFoundError, match='class_counts.json'):
        run_main(validate, base + ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint', lonely,
                                   '--lt-metrics'])
    with pytest.raises(FileNotFoundError, match='missing_counts.json'):
        run_main(validate, base + ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint', ckpt,
                                   '--class-counts', str(tmp_path / 'missing_counts.json')])
    # a class folder without images would shift every later class's label: refused, naming the folder
    gappy = tmp_path / 'gappy'
    for c in range(10):
        os.makedirs(gappy / str(c))
        if c != 2:
            setup['val_images'][c * VAL_PER_CLASS][0].save(gappy / str(c) / 'a.png')
    with pytest.raises(ValueError, match=r"--num-classes 10: the dataset declares 9 classes, .*gappy \(9 classes, 9 "
                                         r"class folders with images; class folders without images: \['2'\]\)"):
        run_main(validate, base + ['--data-dir', str(gappy), '--model', 'paco_resnet32', '--checkpoint', ckpt])
    labels = tmp_path / 'labels.txt'
    for text, message in (('1\n\nx\n', r'labels.txt:3: expected a class index'),
                          ('1\n10\n', r'labels.txt:2: class 10 is outside'), ('\n', 'no class indices')):
        labels.write_text(text)
        with pytest.raises(ValueError, match='--valid-labels .*' + message):
            run_main(validate, base + ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint',
                                       ckpt, '--valid-labels', str(labels)])


def _imagenet_model_checkpoint(path, bias):
    """A 1000-class resnet32_cifar whose classifier bias decides the prediction: {class index: bias}."""
    model = timm.create_model('resnet32_cifar', num_classes=1000)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        for i, b in bias.items():
            model.fc.bias[i] = b
    torch.save({'state_dict': model.state_dict()}, path)


def test_imagenet_c_end_to_end(setup, tmp_path):
    wnids = imagenet_wnids()
    images = [img for img, _ in setup['val_images'][::VAL_PER_CLASS][:2]]
    root = tmp_path / 'imagenet-c'
    for c in IMAGENET_C_CORRUPTIONS:
        for s in range(1, 6):
            for k, w in enumerate((wnids[3], wnids[999])):
                os.makedirs(root / c / str(s) / w)
                images[k].save(root / c / str(s) / w / f'ILSVRC2012_val_{k:08d}.JPEG')
    ckpt = str(tmp_path / 'in1k.pth.tar')
    _imagenet_model_checkpoint(ckpt, {999: 10.0})  # always predicts class 999: error 1/2 in every folder
    res = run_main(setup['validate'], ['--data-dir', str(root), '--ood', 'imagenet-c', '--model', 'resnet32_cifar',
                                       '--checkpoint', ckpt, '--device', 'cpu', '-j', '0', '-b', '8', *IMG,
                                       '--clean-error', '20'])
    for c in IMAGENET_C_CORRUPTIONS:
        assert res[f'{c}_ce'] == pytest.approx(100 * 0.5 / ALEXNET_ERRORS[c], abs=1e-3)
        assert res[f'{c}_relative_ce'] == pytest.approx(100 * (0.5 - 0.2) / (ALEXNET_ERRORS[c] - 0.4348), abs=1e-3)
        assert all(res[f'{c}_s{s}_top1'] == 50.0 for s in range(1, 6))
    assert res['mce'] == pytest.approx(sum(50 / ALEXNET_ERRORS[c] for c in IMAGENET_C_CORRUPTIONS) / 15, abs=1e-3)

    partial = run_main(setup['validate'], [
        '--data-dir', str(root), '--ood', 'imagenet-c', '--ood-corruptions', 'fog,snow', '--model', 'resnet32_cifar',
        '--checkpoint', ckpt, '--device', 'cpu', '-j', '0', '-b', '8', *IMG])
    assert partial['mce'] == pytest.approx(50 * (1 / ALEXNET_ERRORS['fog'] + 1 / ALEXNET_ERRORS['snow']) / 2, abs=1e-3)
    assert 'gaussian_noise_ce' not in partial and 'relative_mce' not in partial
    # --logit-adjust reaches every ImageNet-C folder: class 0 rarest, so its +|log p| beats class 999's bias 10
    counts = [1] + [1000] * 998 + [10 ** 6]
    adjusted = run_main(setup['validate'], [
        '--data-dir', str(root), '--ood', 'imagenet-c', '--ood-corruptions', 'fog', '--model', 'resnet32_cifar',
        '--checkpoint', ckpt, '--device', 'cpu', '-j', '0', '-b', '8', *IMG, '--logit-adjust', '1',
        '--class-counts', save_class_counts(counts, str(tmp_path / 'counts.json'))])
    assert adjusted['logit_adjust'] == 1.0 and all(adjusted[f'fog_s{s}_top1'] == 0.0 for s in range(1, 6))
    assert adjusted['mce'] == pytest.approx(100 / ALEXNET_ERRORS['fog'], abs=1e-3)

    import shutil
    shutil.rmtree(root / 'zoom_blur')
    with pytest.raises(FileNotFoundError, match='zoom_blur'):
        run_main(setup['validate'], ['--data-dir', str(root), '--ood', 'imagenet-c', '--model', 'resnet32_cifar',
                                     '--checkpoint', ckpt, '--device', 'cpu', '-j', '0', *IMG])


def test_imagenet_r_mask_end_to_end(setup, tmp_path):
    r_wnids, mask = subset_wnids('imagenet-r'), subset_mask('imagenet-r')
    assert 0 not in mask  # class 0 (tench) is not an ImageNet-R class
    root = tmp_path / 'imagenet-r'
    for k, w in enumerate((r_wnids[0], r_wnids[5])):
        os.makedirs(root / w)
        setup['val_images'][k][0].save(root / w / f'{k}.jpg')
    ckpt = str(tmp_path / 'in1k.pth.tar')
    # the largest logit is class 0, outside the mask; among the 200 R classes r_wnids[5] wins
    _imagenet_model_checkpoint(ckpt, {0: 20.0, mask[5]: 10.0})
    res = run_main(setup['validate'], ['--data-dir', str(root), '--ood', 'imagenet-r', '--model', 'resnet32_cifar',
                                       '--checkpoint', ckpt, '--device', 'cpu', '-j', '0', '-b', '8', *IMG])
    assert res['top1'] == 50.0 and 'many_acc' not in res
    # training class counts beside the checkpoint: the long-tail split reads the 200 evaluated classes' counts
    counts = [50] * 1000
    counts[mask[0]], counts[mask[5]] = 500, 5  # r_wnids[0] (predicted as r_wnids[5]) many-shot, r_wnids[5] few
    save_class_counts(counts, str(tmp_path))
    res = run_main(setup['validate'], ['--data-dir', str(root), '--ood', 'imagenet-r', '--model', 'resnet32_cifar',
                                       '--checkpoint', ckpt, '--device', 'cpu', '-j', '0', '-b', '8', *IMG])
    assert (res['top1'], res['many_acc'], res['few_acc']) == (50.0, 0.0, 100.0)
    assert (res['many_classes'], res['medium_classes'], res['few_classes']) == (1, 198, 1)
    os.makedirs(root / 'n99999999')
    with pytest.raises(ValueError, match='n99999999'):
        run_main(setup['validate'], ['--data-dir', str(root), '--ood', 'imagenet-r', '--model', 'resnet32_cifar',
                                     '--checkpoint', ckpt, '--device', 'cpu', '-j', '0', *IMG])


def test_bulk_run_writes_each_evaluation_and_records_failures(setup, tmp_path):
    # a checkpoint folder: both checkpoints of the run, class counts beside them, and one unreadable file
    folder = tmp_path / 'run'
    os.makedirs(folder)
    for path in setup['ckpts'] + [os.path.join(os.path.dirname(setup['ckpts'][0]), 'class_counts.json')]:
        shutil.copy(path, folder)
    (folder / 'zz-broken.pth').write_bytes(b'hello')
    results_file = tmp_path / 'made' / 'by' / 'validate' / 'bulk.csv'  # folders created
    common = ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--device', 'cpu', '-b', '50', '-j', '0',
              *THR, *IMG]
    results = run_main(setup['validate'], common + ['--checkpoint', str(folder), '--results-file', str(results_file)])
    by_checkpoint = {os.path.basename(r['checkpoint']): r for r in results}
    assert sorted(by_checkpoint) == ['checkpoint-4.pth.tar', 'checkpoint-9.pth.tar', 'zz-broken.pth']
    assert 'is not a loadable PyTorch checkpoint' in by_checkpoint['zz-broken.pth']['error']
    rows = _read_csv(results_file)
    assert len(rows) == 3 and sum(bool(r['error']) for r in rows) == 1
    for name in ('checkpoint-4', 'checkpoint-9'):  # one per-class file per checkpoint, its own counts
        per_class = _read_csv(results_file.parent / f'bulk_{name}_per_class.csv')
        correct = sum(int(r['correct']) for r in per_class)
        assert correct == round(by_checkpoint[name + '.pth.tar']['top1'] * 10 * VAL_PER_CLASS / 100)
        assert (results_file.parent / f'bulk_{name}_per_class.png').is_file()
    with pytest.raises(ValueError, match='--per-class-file / --per-class-plot name one file; bulk validation of 3'):
        run_main(setup['validate'], common + ['--checkpoint', str(folder), '--per-class-file', str(tmp_path / 'p.csv')])


def test_flags_a_run_would_ignore_are_refused_before_evaluating(setup, tmp_path, monkeypatch, capsys):
    validate = setup['validate']
    base = ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint', setup['ckpts'][1],
            '--device', 'cpu', '-b', '50', '-j', '0', *THR, *IMG]
    for extra, message in (
            (['--ood', 'imagenet-c', '--lt-metrics'], '--lt-metrics: --ood imagenet-c reports corruption errors only'),
            (['--clean-error', '20'], '--clean-error: only --ood imagenet-c uses this'),
            (['--many-shot-thr', '10', '--few-shot-thr', '20'],
             r'--few-shot-thr 20 must be <= --many-shot-thr \+ 1 \(11\)'),
            (['--real-labels', 'r.json', '--valid-labels', 'v.txt'], '--real-labels holds 1000-class ImageNet labels')):
        with pytest.raises(ValueError, match=message):
            run_main(validate, base + extra)
    labels = tmp_path / 'labels.txt'
    labels.write_text('1\n2\n1\n')
    with pytest.raises(ValueError, match=r'--valid-labels .*labels.txt:3: class 1 is listed again \(line 1\)'):
        run_main(validate, base + ['--valid-labels', str(labels)])
    with pytest.raises(SystemExit):  # argparse choices
        run_main(validate, base + ['--results-format', 'yaml'])
    for extra, message in ((['-b', '0'], '-b/--batch-size: expected an integer >= 1, got 0'),
                           (['--logit-adjust', 'nan'], '--logit-adjust: expected a finite number, got nan'),
                           (['--clean-error', '150'], '--clean-error: expected a percentage in [0, 100], got 150')):
        with pytest.raises(SystemExit):  # argparse types, before anything is read
            run_main(validate, base + extra)
        assert message in capsys.readouterr().err

    # an asked-for per-class file without class counts: written, train counts and splits left empty
    lonely = tmp_path / 'alone' / 'model.pth.tar'
    os.makedirs(lonely.parent)
    shutil.copy(setup['ckpts'][1], lonely)
    run_main(validate, base[:-len(THR) - len(IMG)] + IMG + ['--checkpoint', str(lonely), '--per-class-file',
                                                           str(tmp_path / 'no_counts.csv')])
    rows = _read_csv(tmp_path / 'no_counts.csv')
    assert len(rows) == 10 and all(r['train_count'] == '' and r['split'] == '' for r in rows)
    assert sum(int(r['val_count']) for r in rows) == 10 * VAL_PER_CLASS


def test_tau_norm_on_a_hand_computed_classifier():
    from timm_paco.eval import tau_normalize_classifier
    model = timm.create_model('resnet32_cifar', num_classes=2)
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[3.0, 4.0] + [0.0] * 62, [0.0, 2.0] + [0.0] * 62]))
        model.fc.bias.copy_(torch.tensor([0.5, -0.5]))
    tau_normalize_classifier(model, 1.0)  # norms 5 and 2
    torch.testing.assert_close(model.fc.weight[:, :2], torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    torch.testing.assert_close(model.fc.bias, torch.tensor([0.5, -0.5]))  # the bias is kept
    tau_normalize_classifier(model, 0.0)  # τ = 0: unchanged
    torch.testing.assert_close(model.fc.weight[:, :2], torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    half = timm.create_model('resnet32_cifar', num_classes=2)
    with torch.no_grad():
        half.fc.weight.copy_(torch.tensor([[3.0, 4.0] + [0.0] * 62, [0.0, 2.0] + [0.0] * 62]))
    tau_normalize_classifier(half, 0.5)
    torch.testing.assert_close(half.fc.weight[:, :2], torch.tensor([[3 / 5 ** 0.5, 4 / 5 ** 0.5], [0.0, 2 ** 0.5]]))
    with pytest.raises(ValueError, match='--tau-norm must be >= 0'):
        tau_normalize_classifier(half, -1.0)


def test_validate_tau_norm_scores_the_normalised_classifier(setup):
    validate = setup['validate']
    common = ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint', setup['ckpts'][1],
              '--device', 'cpu', '-b', '32', '-j', '0', '--no-prefetcher', *THR, *IMG]
    res = run_main(validate, common + ['--tau-norm', '1'])
    model = timm.create_model('paco_resnet32', num_classes=10)
    with torch.serialization.safe_globals([argparse.Namespace]):
        model.load_state_dict(torch.load(setup['ckpts'][1], weights_only=True)['state_dict'])
    with torch.no_grad():  # the reference: unit-norm class weights, the bias as trained
        model.fc.weight.div_(model.fc.weight.norm(dim=1, keepdim=True))
    model.eval()
    tf = _transform(model)
    with torch.no_grad(), one_thread():
        logits = model(torch.stack([tf(img) for img, _ in setup['val_images']]))
    target = torch.tensor([c for _, c in setup['val_images']])
    assert res['tau_norm'] == 1.0
    assert res['top1'] == pytest.approx(100 * (logits.argmax(1) == target).double().mean().item(), abs=1e-3)
    assert 'tau_norm' not in run_main(validate, common)


def test_ncm_on_a_hand_computed_case():
    from timm_paco.eval import NearestClassMean, attach_ncm, class_means

    class _Features(torch.nn.Module):  # pre-logits = the input's two numbers
        num_classes = 2

        def forward_features(self, x):
            return x

        def forward_head(self, x, pre_logits=False):
            return x if pre_logits else self.fc(x)

        def get_classifier(self):
            return self.fc

        fc = torch.nn.Linear(2, 2)

    model = _Features()
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0], [4.0, 4.0]])  # normalised: (1, 0), (0, 1), (.707, .707)
    means = class_means(model, [(x, torch.tensor([0, 1, 0]))], 2)
    torch.testing.assert_close(means, torch.tensor([[(1 + 0.5 ** 0.5) / 2, 0.5 ** 0.5 / 2], [0.0, 1.0]]))
    head = NearestClassMean(means)
    query = torch.tensor([[1.0, 0.1], [0.1, 1.0]])
    expected = torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(means, dim=1).t()
    torch.testing.assert_close(head(query), expected)
    assert head(query).argmax(1).tolist() == [0, 1]
    with pytest.raises(ValueError, match='--ncm: no images of class 1'):
        class_means(model, [(x, torch.tensor([0, 0, 0]))], 2)
    resnet = timm.create_model('resnet32_cifar', num_classes=2)
    attach_ncm(resnet, torch.randn(2, 64))
    assert isinstance(resnet.get_classifier(), NearestClassMean) and resnet(torch.randn(1, 3, 32, 32)).shape == (1, 2)


def test_validate_ncm_scores_nearest_class_means_of_the_named_split(setup):
    validate = setup['validate']
    common = ['--data-dir', str(setup['tmp']), '--split', 'val', '--model', 'paco_resnet32', '--checkpoint',
              setup['ckpts'][1], '--device', 'cpu', '-b', '32', '-j', '0', '--no-prefetcher', *THR, *IMG]
    res = run_main(validate, common + ['--ncm', '--ncm-split', 'val'])  # class means of the evaluated images
    model = timm.create_model('paco_resnet32', num_classes=10)
    with torch.serialization.safe_globals([argparse.Namespace]):
        model.load_state_dict(torch.load(setup['ckpts'][1], weights_only=True)['state_dict'])
    model.eval()
    tf = _transform(model)
    with torch.no_grad(), one_thread():
        x = torch.stack([tf(img) for img, _ in setup['val_images']])
        feats = F.normalize(model.forward_head(model.forward_features(x), pre_logits=True), dim=1)
    target = torch.tensor([c for _, c in setup['val_images']])
    means = F.normalize(torch.stack([feats[target == c].mean(0) for c in range(10)]), dim=1)
    pred = (feats @ means.t()).argmax(1)
    assert res['ncm'] == 'val'
    assert res['top1'] == pytest.approx(100 * (pred == target).double().mean().item(), abs=1e-3)
    with pytest.raises(Exception, match='nope'):
        run_main(validate, common + ['--ncm', '--ncm-split', 'nope'])


def _ece_reference(probs, targets, n_bins=15):
    """Σ_b |B_b| / N · |acc(B_b) − conf(B_b)| over equal-width bins of the top-1 confidence, float64."""
    conf, pred = probs.double().max(dim=1)
    total = 0.0
    for b in range(n_bins):
        low, high = b / n_bins, (b + 1) / n_bins
        inside = (conf > low) & (conf <= high)
        if inside.any():
            acc = (pred[inside] == targets[inside]).double().mean()
            total += inside.double().mean() * (acc - conf[inside].mean()).abs()
    return 100 * float(total)


def test_calibration_meter_on_a_hand_computed_case():
    from timm_paco.eval import CalibrationMeter
    meter = CalibrationMeter(3, ['many', 'medium', 'few'])
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    meter.update(probs.log(), torch.tensor([0, 0, 2]))  # confidences 0.9 right, 0.7 wrong, 0.4 right
    results = meter.results()
    assert results['ece'] == pytest.approx(100 * (0.1 + 0.7 + 0.6) / 3, abs=1e-3)
    assert results['many_ece'] == pytest.approx(100 * (0.1 + 0.7) / 2, abs=1e-3)  # the two class-0 images
    assert results['few_ece'] == pytest.approx(60.0, abs=1e-3) and results['medium_ece'] is None
    assert meter.confusion().tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    full = [b for b in meter.reliability_bins() if b['count']]
    assert [(b['count'], b['accuracy']) for b in full] == [(1, 1.0), (1, 0.0), (1, 1.0)]
    assert [round(b['confidence'], 4) for b in full] == [0.4, 0.7, 0.9]


def test_validate_reports_ece_and_writes_the_reliability_diagram_and_confusion(setup, tmp_path):
    from timm_paco.eval import confusion_counts
    validate = setup['validate']
    results_file = str(tmp_path / 'results.json')
    res = run_main(validate, ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint',
                              setup['ckpts'][1], '--device', 'cpu', '-b', '32', '-j', '0', '--no-prefetcher', *THR,
                              *IMG, '--results-file', results_file, '--results-format', 'json'])
    logits = _reference_logits(setup['ckpts'][1], setup['val_images'])
    target = torch.tensor([c for _, c in setup['val_images']])
    assert res['ece'] == pytest.approx(_ece_reference(logits.softmax(1), target), abs=1e-2)
    few = [c for c, n in enumerate(TRAIN_COUNTS) if n < 10]  # THR's few-shot threshold
    mask = torch.isin(target, torch.tensor(few))
    assert res['few_ece'] == pytest.approx(_ece_reference(logits[mask].softmax(1), target[mask]), abs=1e-2)
    assert json.loads(open(results_file).read())['ece'] == res['ece']
    with open(tmp_path / 'results_reliability.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    rows = _read_csv(str(tmp_path / 'results_confusion.csv'))
    counts = [[int(r[str(p)]) for p in range(10)] for r in rows]
    assert counts == confusion_counts(logits, target).tolist()


def test_features_file_sweeps_tau_norm_as_validate_scores_it(setup, tmp_path):
    from timm_paco.eval import load_features, select_tau, sweep_tau_norm
    validate = setup['validate']
    common = ['--data-dir', setup['val_dir'], '--model', 'paco_resnet32', '--checkpoint', setup['ckpts'][1],
              '--device', 'cpu', '-b', '32', '-j', '0', '--no-prefetcher', *THR, *IMG]
    path = str(tmp_path / 'features.safetensors')
    plain = run_main(validate, common + ['--features-file', path])
    features, targets, weight, bias = load_features(path)
    assert features.shape == (len(setup['val_images']), 64) and weight.shape == (10, 64) and bias.shape == (10,)
    assert targets.tolist() == [c for _, c in setup['val_images']]
    taus = [0.0, 0.5, 1.0]
    swept = sweep_tau_norm(features, targets, weight, bias, taus)
    assert swept[0] == pytest.approx(plain['top1'], abs=1e-3)  # τ = 0: the classifier as trained
    for tau, acc in zip(taus[1:], swept[1:]):  # each τ: what validate.py --tau-norm scores
        assert acc == pytest.approx(run_main(validate, common + ['--tau-norm', str(tau)])['top1'], abs=1e-3)
    assert select_tau(taus, swept) in taus
    with pytest.raises(ValueError, match='--tau-norm values must be >= 0'):
        sweep_tau_norm(features, targets, weight, bias, [-1.0])
