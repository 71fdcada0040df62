"""Fault drills: train.py, validate.py, the Hub CLI, the converter, the segmentation CLI and the quick start meeting
the faults real runs meet (bad flags and files, a diverging run, a rerun, kill -9, SIGINT, a full disk, odd
images). Each drill asserts the exit code, the one error line on stderr, that no traceback is printed, and that
nothing in the watched folders changed. Drills run as real processes where the behaviour is a process's (a
signal, a kill, a race, a resource limit, loader workers) and as one of each kind; the others run the same entry
point in the test's process (``_cli.run_here``)."""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from _cli import REPO, TRAIN, VALIDATE, run_here

HUB = [sys.executable, '-m', 'timm_paco.hub']
CONVERT = [sys.executable, '-m', 'timm_paco.convert']
NUM_CLASSES = 4  # conftest's image_folder


def _env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    env.pop('TIMM_PACO_DEBUG', None)
    env.update(extra)
    return env


def _train_args(data_dir, output, experiment, *extra):
    return TRAIN + [
        '--data-dir', str(data_dir), '--model', 'test_convnext', '--img-size', '32', '--num-classes', str(NUM_CLASSES),
        '-b', '4', '--lr', '0.02', '--warmup-epochs', '0', '--device', 'cpu', '--workers', '0', '--seed', '0',
        '--paco-queue-size', '8', '--log-interval', '1', '--output', str(output), '--experiment', experiment, *extra]


def _validate_args(data_dir, checkpoint, *extra):
    return VALIDATE + ['--data-dir', str(data_dir), '--model', 'test_convnext', '--num-classes', str(NUM_CLASSES),
                       '--img-size', '32', '--device', 'cpu', '--workers', '0', '--checkpoint', str(checkpoint),
                       *extra]


def _tree(folder) -> dict:
    """path -> sha256 of every file under ``folder`` (empty when it does not exist)."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _drill(cmd, code, message, watch=(), env=None, timeout=300):
    """Run ``cmd``; assert exit ``code``, one ``: error:`` line holding ``message``, no traceback, and ``watch``
    folders unchanged. Returns the process."""
    before = {str(w): _tree(w) for w in watch}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or _env(), timeout=timeout, cwd=REPO)
    errors = [line for line in proc.stderr.splitlines() if ': error: ' in line]
    assert proc.returncode == code, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    assert proc.stderr.rstrip().splitlines()[-1] == errors[0]  # the last word on stderr
    for w in watch:
        assert _tree(w) == before[str(w)], f'{w} changed'
    return proc


def _drill_here(capsys, argv, code, message, watch=()):
    """``_drill`` in this process (``run_main``, as the command's ``__main__`` does): for the drills whose process
    start would only repeat one that runs as a subprocess. Returns stderr."""
    before = {str(w): _tree(w) for w in watch}
    got, _, err = run_here(capsys, argv)
    errors = [line for line in err.splitlines() if ': error: ' in line]
    assert got == code, err[-3000:]
    assert 'Traceback' not in err and len(errors) == 1 and message in errors[0], err[-3000:]
    assert err.rstrip().splitlines()[-1] == errors[0]  # the last word on stderr
    for w in watch:
        assert _tree(w) == before[str(w)], f'{w} changed'
    return err


def _all_finite(obj) -> bool:
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if torch.is_tensor(obj) and obj.is_floating_point():
        return bool(torch.isfinite(obj).all())
    return True


@pytest.fixture(scope='module')
def trained(image_folder, tmp_path_factory):
    """One finished 1-epoch CE run: its folder, checkpoint and log."""
    out = tmp_path_factory.mktemp('runs')
    proc = subprocess.run(_train_args(image_folder, out, 'base', '--task', 'ce', '--epochs', '1'),
                          capture_output=True, text=True, env=_env(), timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(out=out, dir=out / 'base', checkpoint=out / 'base' / 'last.pth.tar', log=proc.stderr)


# -- validation never on the training images ------------------------------------------------------------------------

def test_split_paths_are_logged(trained, image_folder):
    assert f'--train-split train: {os.path.join(image_folder, "train")}' in trained['log']
    assert f'--val-split validation: {os.path.join(image_folder, "validation")}' in trained['log']


def test_a_split_not_found_is_an_error_naming_the_splits(image_folder, tmp_path, fmnist_root, capsys):
    _drill(_train_args(image_folder, tmp_path, 'typo', '--val-split', 'valdation'), 2,
           f'--val-split valdation: {image_folder} has no valdation folder; its splits are train, validation',
           watch=[tmp_path])
    _drill_here(capsys, _train_args(image_folder, tmp_path, 'typo', '--train-split', 'trian'), 2,
                '--train-split trian: ', watch=[tmp_path])
    # a root of class folders serves every split: training on it and validating on it is refused
    _drill_here(capsys, _train_args(os.path.join(image_folder, 'train'), tmp_path, 'classes'), 2,
                '--val-split validation: it reads the training images', watch=[tmp_path])
    # torchvision's train / test datasets: a misspelled split was read as the test set
    torch_args = _train_args(fmnist_root, tmp_path, 'torch', '--dataset', 'torch/fashion_mnist', '--num-classes', '10',
                             '--val-split', 'vaildation')
    _drill_here(capsys, torch_args, 2, '--val-split vaildation: torch/fashion_mnist has a train split',
                watch=[tmp_path])
    assert not os.listdir(tmp_path)


def test_validate_refuses_a_split_it_does_not_have(trained, image_folder, capsys):
    _drill_here(capsys, _validate_args(image_folder, trained['checkpoint'], '--split', 'valdation'), 1,
                'has no valdation folder; its splits are train, validation', watch=[trained['dir']])


def test_validate_without_network_names_the_model_and_checkpoint(image_folder):
    cmd = _validate_args(image_folder, '')  # no checkpoint: timm's pretrained weights, not reachable offline
    proc = _drill(cmd, 1, '--model test_convnext: its pretrained weights could not be loaded (')  # HF_HUB_OFFLINE=1
    assert proc.stderr.rstrip().endswith('; pass --checkpoint FILE for local weights')


# -- a diverging run stops, and no non-finite model is saved ---------------------------------------------------------

def test_nan_run_stops_at_once_and_keeps_the_last_finite_checkpoint(image_folder, tmp_path):
    # epoch 0 at lr 0.02, then the step schedule multiplies it by 1e30: the weights overflow in epoch 1's first update
    cmd = _train_args(image_folder, tmp_path, 'nan', '--task', 'paco', '--epochs', '3', '--sched', 'step',
                      '--decay-epochs', '1', '--decay-rate', '1e30')
    proc = _drill(cmd, 1, 'non-finite loss (NaN or inf) at epoch 1, update 1 (batch 1): training diverged')
    assert 'nan/last.pth.tar, holds the last finite model' in proc.stderr
    assert 'Train: 1 [   1/4' not in proc.stderr and 'Train: 2' not in proc.stderr  # stopped at that step
    run = tmp_path / 'nan'
    assert sorted(os.listdir(run)) == ['args.yaml', 'checkpoint-0.pth.tar', 'class_counts.json', 'last.pth.tar',
                                       'model_best.pth.tar', 'summary.csv']
    for name in ('last.pth.tar', 'model_best.pth.tar'):
        checkpoint = torch.load(run / name, map_location='cpu', weights_only=False)
        assert checkpoint['epoch'] == 0 and _all_finite(checkpoint)  # model, EMA key encoder, queue, projector
    assert len((run / 'summary.csv').read_text().splitlines()) == 2  # header + epoch 0


def test_nonfinite_updates_can_be_skipped_up_to_a_bound(image_folder, tmp_path, capsys):
    cmd = _train_args(image_folder, tmp_path, 'skip', '--task', 'gpaco', '--epochs', '3', '--sched', 'step',
                      '--decay-epochs', '1', '--decay-rate', '1e30', '--max-nonfinite-steps', '2')
    err = _drill_here(capsys, cmd, 1, 'non-finite loss (NaN or inf) at epoch 1, update 3 (batch 3)')
    assert err.count('update skipped') == 2


def test_validate_export_and_training_refuse_a_nonfinite_checkpoint(trained, image_folder, tmp_path, capsys):
    checkpoint = torch.load(trained['checkpoint'], map_location='cpu', weights_only=False)
    first = next(k for k, v in checkpoint['state_dict'].items() if v.is_floating_point())
    checkpoint['state_dict'][first][0] = float('nan')
    bad = tmp_path / 'nan.pth.tar'
    torch.save(checkpoint, bad)
    message = f'has non-finite weights (NaN or inf) in {first}'
    _drill_here(capsys, _validate_args(image_folder, bad), 1, message, watch=[tmp_path])
    _drill_here(capsys, HUB + ['export', str(bad), str(tmp_path / 'hub')], 2, message, watch=[tmp_path])
    for flag in ('--initial-checkpoint', '--resume'):
        _drill_here(capsys, _train_args(image_folder, tmp_path, 'from-nan', flag, str(bad), '--epochs', '2'), 1,
                    message, watch=[tmp_path])
    assert sorted(os.listdir(tmp_path)) == ['nan.pth.tar']


def test_nonfinite_weights_are_never_saved():
    import argparse
    import timm
    from timm_paco.cli.train_loop import TrainRun
    from timm_paco.finite import NonFiniteError
    from timm_paco.methods import create_task
    task = create_task('paco', timm.create_model('test_convnext', num_classes=NUM_CLASSES), queue_size=8,
                       verbose=False)
    run = TrainRun(args=argparse.Namespace(), task=task, optimizer=None, device=torch.device('cpu'), loader_train=None)
    run.check_savable('the end of epoch 0')  # finite: no error
    with torch.no_grad():
        task.module.projector.state_dict(keep_vars=True)[next(iter(task.module.projector.state_dict()))].fill_(
            float('inf'))
    with pytest.raises(NonFiniteError, match=r'the model at the end of epoch 3 has non-finite weights .* in '
                                             r'projector\.'):
        run.check_savable('the end of epoch 3')


# -- a rerun never overwrites a run ----------------------------------------------------------------------------------

def test_a_rerun_is_refused_and_overwrite_starts_over(trained, image_folder, tmp_path, capsys):
    again = _train_args(image_folder, trained['out'], 'base', '--task', 'ce', '--epochs', '1')
    _drill(again, 2, f'--experiment base: {trained["dir"]} already holds a run (checkpoint-0.pth.tar, '
           f'last.pth.tar, model_best.pth.tar, summary.csv); resume it with --resume {trained["checkpoint"]}, '
           f'start over with --overwrite', watch=[trained['out']])
    copy = tmp_path / 'base'
    shutil.copytree(trained['dir'], copy)
    (copy / 'checkpoint-7.pth.tar').write_bytes((copy / 'last.pth.tar').read_bytes())  # a stale one
    (copy / 'notes.txt').write_text('mine')
    code, _, err = run_here(capsys, _train_args(image_folder, tmp_path, 'base', '--task', 'ce', '--epochs', '1',
                                                '--overwrite'))
    assert code == 0, err[-3000:]
    assert not (copy / 'checkpoint-7.pth.tar').exists() and (copy / 'notes.txt').read_text() == 'mine'


def test_resume_keeps_the_restored_lr_and_says_so(trained, image_folder, tmp_path, capsys):
    code, _, err = run_here(capsys, _train_args(image_folder, tmp_path, 'resumed', '--task', 'ce', '--epochs', '2',
                                                '--sched', 'cosine', '--resume', str(trained['checkpoint']),
                                                '--lr', '0.5'))
    assert code == 0, err[-3000:]
    assert "--lr 0.5: the resumed optimizer state keeps the run's --lr 0.02" in err
    import yaml
    assert yaml.safe_load((tmp_path / 'resumed' / 'args.yaml').read_text())['lr'] == 0.02
    # epoch 1 of a 2-epoch cosine schedule from 0.02, not from 0.5
    assert (tmp_path / 'resumed' / 'summary.csv').read_text().splitlines()[1].endswith(',0.01')


def test_a_class_without_training_images_is_named(image_folder, tmp_path, capsys):
    # 4 images per class and imbalance 0.01: classes 1, 2, 3 keep int(4 * 0.01^(c/3)) = 0 images
    code, _, err = run_here(capsys, _train_args(image_folder, tmp_path, 'empty', '--task', 'ce', '--epochs', '1',
                                                '--imb-factor', '0.01', '-b', '2'))
    assert code == 0, err[-3000:]
    assert 'Classes 1, 2, 3 of 4 have no training images' in err


# -- one clear line for every user mistake ---------------------------------------------------------------------------

def test_user_mistakes_end_in_one_line(image_folder, tmp_path, capsys):
    (tmp_path / 'bad.yaml').write_text('lr: [1\n')
    (tmp_path / 'key.yaml').write_text('lrr: 0.1\n')
    out = tmp_path / 'out'
    cases = [
        (['--data-dir', str(tmp_path / 'nope')], '--data-dir {}: no such folder'.format(tmp_path / 'nope')),
        (['--device', 'cuda'], '--device cuda: CUDA is not available here'),
        (['--model', 'resnet5O'], '--model resnet5O: no such model in timm (or timm_paco); did you mean resnet50'),
        (['-c', str(tmp_path / 'missing.yaml')], '-c/--config {}: cannot read it'.format(tmp_path / 'missing.yaml')),
        (['-c', str(tmp_path / 'bad.yaml')], 'bad.yaml: not valid YAML at line 2, column 1'),
        (['-c', str(tmp_path / 'key.yaml')], "key.yaml: unknown key 'lrr' (no such flag); did you mean --lr?"),
        (['--model', 'vit_tiny_patch16_224', '--img-size', '33'],
         '--img-size 33x33: vit_tiny_patch16_224 takes 224x224 inputs'),
        (['--task', 'dscl', '--pbsd-patches', '0'], 'argument --pbsd-patches: expected an integer >= 1, got 0'),
        (['--task', 'dscl', '--pbsd-patch-size', '0'], 'argument --pbsd-patch-size: expected an integer >= 1, got 0'),
        (['--task', 'dscl', '--pbsd-scale', '0', '0.5'], '--pbsd-scale must be two area fractions 0 < MIN <= MAX <= 1'),
        (['--task', 'dscl', '--pbsd-scale', '0.1', '1.5'], '--pbsd-scale must be two area fractions'),
        (['--task', 'dscl', '--model', 'vit_tiny_patch16_224', '--img-size', '224'],
         '--pbsd-patch-size 64: model vit_tiny_patch16_224 takes only 224x224 inputs; add --model-kwargs '
         'dynamic_img_size=True'),
        (['--task', 'dscl', '--no-aug'], '--pbsd-weight 1.5: PBSD draws its boxes and patches on the query view'),
        (['--task', 'class-balanced', '--cb-beta', '1'], 'argument --cb-beta: expected a number in [0, 1), got 1'),
        (['--task', 'focal', '--focal-gamma', '-1'], 'argument --focal-gamma: expected a finite number >= 0, got -1'),
        (['--task', 'focal', '--smoothing', '0.1'], '--smoothing 0.1: the focal loss takes no label smoothing'),
        (['--task', 'ldam-drw', '--drw-epoch', '1'], '--drw-epoch 1: the run has --epochs 1 (epochs 0 to 0)'),
    ]
    if torch.cuda.is_available():
        cases.pop(1)
    for i, (extra, message) in enumerate(cases):
        cmd = _train_args(image_folder, out, 'mistake', '--epochs', '1')
        if extra[0] == '--data-dir':
            cmd[cmd.index('--data-dir') + 1] = extra[1]
        else:
            cmd += extra
        if i < 1:  # as a process; the others in this process, through the same entry point
            _drill(cmd, 2, message, watch=[tmp_path])
        else:
            _drill_here(capsys, cmd, 2, message, watch=[tmp_path])
    assert not out.exists()


def _bad_checkpoints(folder, good):
    """Every kind of unreadable checkpoint: name -> (path, words of the message)."""
    data = good.read_bytes()
    files = {'truncated': data[:len(data) // 2], 'empty': b'', 'random': bytes(random.Random(0).randbytes(4096)),
             'text': b'not a checkpoint\n'}
    out = {}
    for name, content in files.items():
        (folder / f'{name}.pth.tar').write_bytes(content)
        out[name] = (folder / f'{name}.pth.tar', 'is not a loadable PyTorch checkpoint')
    torch.save([1, 2, 3], folder / 'list.pth.tar')
    out['list'] = (folder / 'list.pth.tar', 'expected a dict checkpoint, got list')
    import timm
    torch.save({'state_dict': timm.create_model('resnet10t', num_classes=NUM_CLASSES).state_dict()},
               folder / 'arch.pth.tar')
    out['wrong-architecture'] = (folder / 'arch.pth.tar', 'does not match model test_convnext')
    import safetensors.torch
    safetensors.torch.save_file({'w': torch.zeros(64, 64)}, str(folder / 'cut.safetensors'))
    (folder / 'cut.safetensors').write_bytes((folder / 'cut.safetensors').read_bytes()[:200])
    out['corrupt-safetensors'] = (folder / 'cut.safetensors', 'is not a readable safetensors file')
    marker = folder / 'PWNED'

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)
    torch.save({'state_dict': Payload()}, folder / 'evil.pth.tar')
    out['malicious-pickle'] = (folder / 'evil.pth.tar', 'is not a loadable PyTorch checkpoint')
    return out, marker


def test_unreadable_checkpoints_are_refused_by_the_one_reader(trained, tmp_path):
    """Every kind, in process, through the readers behind --resume, --initial-checkpoint and --checkpoint."""
    import timm
    from timm_paco.cli.train_task import check_resume_checkpoint
    from timm_paco.eval.checkpoint import create_eval_model
    from timm_paco.tasks.initial_weights import read_initial_checkpoint
    bad, marker = _bad_checkpoints(tmp_path, trained['checkpoint'])
    model = timm.create_model('test_convnext', num_classes=NUM_CLASSES)
    readers = {
        '--resume': lambda p: check_resume_checkpoint(str(p)),
        '--initial-checkpoint': lambda p: read_initial_checkpoint(model, str(p)),
        '--checkpoint': lambda p: create_eval_model('test_convnext', checkpoint=str(p), num_classes=NUM_CLASSES),
    }
    for flag, read in readers.items():
        for name, (path, words) in bad.items():
            if flag == '--resume' and name == 'wrong-architecture':
                continue  # a train.py-shaped file: the model's load names the mismatch (a drill below)
            if flag == '--resume' and name == 'list':
                words = 'not a train.py checkpoint'
            with pytest.raises(ValueError) as info:
                read(path)
            text = str(info.value)
            assert flag in text and str(path) in text and words in text, (flag, name, text)
    assert not marker.exists()  # the payload never ran


def test_unreadable_checkpoints_end_in_one_line(trained, image_folder, tmp_path, capsys):
    bad, marker = _bad_checkpoints(tmp_path, trained['checkpoint'])
    out = tmp_path / 'out'
    path, words = bad['random']
    _drill_here(capsys, _validate_args(image_folder, path), 1, f'--checkpoint: checkpoint \'{path}\' {words}',
                watch=[tmp_path])
    path, words = bad['malicious-pickle']
    _drill(_train_args(image_folder, out, 'bad', '--resume', str(path), '--epochs', '2'), 1,
           f'--resume: checkpoint \'{path}\' {words}', watch=[tmp_path])
    for name in ('random', 'truncated', 'corrupt-safetensors'):
        path, words = bad[name]
        _drill_here(capsys, _train_args(image_folder, out, 'bad', '--initial-checkpoint', str(path), '--epochs', '2'),
                    1, f'--initial-checkpoint: checkpoint \'{path}\' {words}', watch=[tmp_path])
    _drill_here(capsys, _train_args(image_folder, out, 'bad', '--resume', str(bad['list'][0]), '--epochs', '2'), 1,
                'not a train.py checkpoint', watch=[tmp_path])
    _drill_here(capsys, _train_args(image_folder, out, 'bad', '--resume', str(bad['wrong-architecture'][0]),
                                    '--epochs', '2'), 1, 'does not match model', watch=[tmp_path])
    _drill_here(capsys, HUB + ['export', str(bad['random'][0]), str(tmp_path / 'hub')], 2,
                'is not a loadable PyTorch checkpoint', watch=[tmp_path])
    assert not marker.exists() and not out.exists()


def test_debug_shows_the_traceback(image_folder, tmp_path, capsys):
    cmd = _train_args(image_folder, tmp_path, 'dbg', '--epochs', '1', '--resume', str(tmp_path / 'nope.pth.tar'))
    _drill_here(capsys, cmd, 1, f"--resume: checkpoint '{tmp_path / 'nope.pth.tar'}' does not exist")
    debug = subprocess.run(cmd, capture_output=True, text=True, env=_env(TIMM_PACO_DEBUG='1'), cwd=REPO)
    assert debug.returncode == 1 and 'Traceback' in debug.stderr


# -- the Hub and the quick start -------------------------------------------------------------------------------------

def test_export_never_overwrites_a_folder_unasked(trained, tmp_path, capsys):
    target = tmp_path / 'hub'
    target.mkdir()
    (target / 'README.md').write_text('my own notes')
    (target / 'other.safetensors').write_bytes(b'another model')
    _drill(HUB + ['export', str(trained['checkpoint']), str(target)], 2,
           f"output folder '{target}' is not empty (README.md, other.safetensors)", watch=[tmp_path])
    code, _, err = run_here(capsys, HUB + ['export', str(trained['checkpoint']), str(target), '--overwrite'])
    assert code == 0, err[-3000:]
    assert sorted(os.listdir(target)) == ['README.md', 'config.json', 'model.safetensors']
    assert 'my own notes' not in (target / 'README.md').read_text()


def test_export_and_convert_never_write_over_their_input_or_a_run(trained, tmp_path, capsys):
    """--overwrite included: a folder holding the checkpoint being read, or a training run, is refused; convert
    refuses an existing output without --overwrite. Every refusal before anything is read."""
    convert = CONVERT
    run, checkpoint = trained['dir'], trained['checkpoint']
    _drill(HUB + ['export', str(checkpoint), str(run), '--overwrite'], 2,
           f"output folder '{run}' holds the input {checkpoint}: writing there would replace what is being read",
           watch=[trained['out']])
    _drill_here(capsys, HUB + ['export', str(checkpoint), str(trained['out']), '--overwrite'], 2,
                f"output folder '{trained['out']}' holds the input {checkpoint}", watch=[trained['out']])
    runs = tmp_path / 'runs'
    shutil.copytree(run, runs / 'other')
    copy = tmp_path / 'model.pth.tar'
    shutil.copyfile(checkpoint, copy)
    _drill_here(capsys, HUB + ['export', str(copy), str(runs), '--overwrite'], 2,
                f"output folder '{runs}' holds a training run ({runs / 'other'}: args.yaml, checkpoint-0.pth.tar, "
                f"last.pth.tar, summary.csv), which --overwrite would delete", watch=[tmp_path])
    existing = tmp_path / 'existing.safetensors'
    existing.write_bytes(b'another model')
    _drill_here(capsys, convert + [str(copy), str(existing)], 2,
                f"dst '{existing}' exists: name a new file, or pass --overwrite to replace it", watch=[tmp_path])
    _drill_here(capsys, convert + [str(existing), str(existing), '--overwrite'], 2,
                f"dst '{existing}' is the input", watch=[tmp_path])
    _drill_here(capsys, convert + [str(copy), str(tmp_path), '--overwrite'], 2,
                f"dst '{tmp_path}' holds the input {copy}", watch=[tmp_path])
    _drill_here(capsys, convert + [str(copy), str(runs / 'other'), '--overwrite'], 2,
                f"dst '{runs / 'other'}' holds a training run ({runs / 'other'}: ", watch=[tmp_path])


def test_push_without_network_keeps_the_run_and_says_how_to_push_later(image_folder, tmp_path):
    cmd = _train_args(image_folder, tmp_path, 'push', '--task', 'ce', '--epochs', '1', '--push-to-hub', 'org/model')
    proc = _drill(cmd, 1, '--push-to-hub org/model: the push failed', env=_env(HF_TOKEN='hf_offline_test'))
    line = proc.stderr.splitlines()[-1]
    run = tmp_path / 'push'
    assert f'push it later with python -m timm_paco.hub push {run / "model_best.pth.tar"} org/model' in line
    assert (run / 'last.pth.tar').is_file() and (run / 'model_best.pth.tar').is_file()


def test_quickstart_without_the_data_names_the_install_command(tmp_path):
    cmd = [sys.executable, '-m', 'timm_paco.quickstart', '--tiny', '--no-download', '--output', str(tmp_path / 'qs')]
    _drill(cmd, 1, 'apt-get install dataset-fashion-mnist', env=_env(FASHION_MNIST_DIR=str(tmp_path / 'none')))


# -- what already holds: kill -9 anywhere -----------------------------------------------------------------------------

def _wait_for(path, proc, timeout=120):
    end = time.time() + timeout
    while not os.path.isfile(path):
        assert proc.poll() is None and time.time() < end, 'the run ended before writing ' + str(path)
        time.sleep(0.05)


def test_kill_9_then_resume_is_bit_identical(image_folder, tmp_path):
    def args(experiment, *extra):
        return _train_args(image_folder, tmp_path, experiment, '--task', 'paco', '--epochs', '3', '--val-split', '',
                           *extra)
    whole = subprocess.run(args('whole'), capture_output=True, text=True, env=_env(), cwd=REPO)
    assert whole.returncode == 0, whole.stderr[-3000:]
    proc = subprocess.Popen(args('killed'), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            cwd=REPO)
    _wait_for(tmp_path / 'killed' / 'last.pth.tar', proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(args('killed', '--resume', str(tmp_path / 'killed' / 'last.pth.tar')),
                             capture_output=True, text=True, env=_env(), cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / 'whole' / 'last.pth.tar', map_location='cpu', weights_only=False)
    b = torch.load(tmp_path / 'killed' / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert a['epoch'] == b['epoch'] == 2
    for key in ('state_dict', 'task_state'):
        flat_a, flat_b = _flatten(a[key]), _flatten(b[key])
        assert flat_a.keys() == flat_b.keys()
        assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a), key


def _flatten(obj, prefix=''):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f'{prefix}{k}.'))
        return out
    return {prefix: obj} if torch.is_tensor(obj) else {}


def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(image_folder, tmp_path):
    rng = random.Random(0)
    for attempt in range(3):
        experiment = f'k{attempt}'
        proc = subprocess.Popen(_train_args(image_folder, tmp_path, experiment, '--task', 'ce', '--epochs', '50',
                                            '--val-split', ''),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=REPO)
        _wait_for(tmp_path / experiment / 'last.pth.tar', proc)
        time.sleep(rng.uniform(0, 0.5))  # somewhere in the next epochs, their checkpoint writes included
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        checkpoint = torch.load(tmp_path / experiment / 'last.pth.tar', map_location='cpu', weights_only=False)
        assert checkpoint['epoch'] >= 0 and checkpoint['state_dict']


def test_a_second_run_into_a_running_experiment_is_refused_and_a_killed_runs_lock_is_stale(image_folder, tmp_path,
                                                                                          capsys):
    """Two runs into one --experiment: the second is refused naming the first (its pid), whatever its flags; once
    the first is killed (-9, its lock file left behind) the folder's lock is free again and the run resumes."""
    first = subprocess.Popen(_train_args(image_folder, tmp_path, 'race', '--task', 'ce', '--epochs', '200'),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
    folder = tmp_path / 'race'
    start = time.time()
    while not (folder / 'last.pth.tar').exists():
        assert first.poll() is None and time.time() - start < 240, first.communicate()[1][-3000:]
        time.sleep(0.2)
    in_use = f'--experiment race: {folder} is in use by a running training (pid {first.pid} on '
    _drill(_train_args(image_folder, tmp_path, 'race', '--task', 'ce', '--epochs', '2'), 2, in_use)
    for extra in (['--seed', '2', '--lr', '0.02', '--overwrite'], ['--resume', str(folder / 'last.pth.tar')]):
        # the lock is the folder's, whichever process asks (these in the test's own)
        _drill_here(capsys, _train_args(image_folder, tmp_path, 'race', '--task', 'ce', '--epochs', '2', *extra), 2,
                    in_use)
    first.kill()  # -9: no handler runs, the lock file stays behind
    first.wait(timeout=60)
    assert (folder / '.run.lock').exists()
    epoch = torch.load(folder / 'last.pth.tar', weights_only=False)['epoch']
    code, _, err = run_here(capsys, _train_args(image_folder, tmp_path, 'race', '--task', 'ce', '--epochs',
                                                str(epoch + 2), '--resume', str(folder / 'last.pth.tar')))
    assert code == 0, err[-3000:]
    assert torch.load(folder / 'last.pth.tar', weights_only=False)['epoch'] == epoch + 1
    assert not (folder / '.run.lock').exists()


# -- a run's folder records only what happened -----------------------------------------------------------------------

def _copy_run(trained, tmp_path, name='run'):
    copy = tmp_path / name
    shutil.copytree(trained['dir'], copy)
    return copy


def test_resume_after_an_interrupted_save_finds_the_newest_loadable_checkpoint(trained, image_folder, tmp_path,
                                                                               capsys):
    """The saver's unlink window (kill -9 after last.pth.tar was unlinked, before tmp.pth.tar was renamed), laid out
    as it leaves the folder: the refusal, a missing --resume file and --resume of the folder name tmp.pth.tar."""
    run = _copy_run(trained, tmp_path)
    os.replace(run / 'last.pth.tar', run / 'tmp.pth.tar')
    tmp = run / 'tmp.pth.tar'
    _drill_here(capsys, _train_args(image_folder, tmp_path, 'run', '--task', 'ce', '--epochs', '2'), 2,
                f'already holds a run (checkpoint-0.pth.tar, model_best.pth.tar, summary.csv, tmp.pth.tar); '
                f'resume it with --resume {tmp}, start over', watch=[run])
    _drill_here(capsys, _train_args(image_folder, tmp_path, 'run', '--task', 'ce', '--epochs', '2', '--resume',
                       str(run / 'last.pth.tar')), 1,
                f'--resume {run / "last.pth.tar"}: no such file; the newest loadable checkpoint in its folder is '
                f'{tmp} (epoch 0): resume with --resume {tmp}', watch=[run])
    # a partial tmp.pth.tar (killed while writing) is passed over for the history's checkpoint-0
    whole = tmp.read_bytes()
    tmp.write_bytes(whole[:len(whole) // 3])
    code, _, err = run_here(capsys, _train_args(image_folder, tmp_path, 'run', '--task', 'ce', '--epochs', '2',
                                                '--resume', str(run)))
    assert code == 0, err[-3000:]
    assert f'--resume {run}: resuming {run / "checkpoint-0.pth.tar"}, its newest loadable checkpoint (epoch 0)' in err
    assert torch.load(run / 'last.pth.tar', weights_only=False)['epoch'] == 1 and not tmp.exists()


def test_resume_with_no_epoch_left_is_refused(trained, image_folder, tmp_path, capsys):
    run = _copy_run(trained, tmp_path)
    _drill_here(capsys, _train_args(image_folder, tmp_path, 'run', '--task', 'ce', '--epochs', '1', '--resume',
                       str(run / 'last.pth.tar')), 2,
                f'--resume {run / "last.pth.tar"}: its run finished epoch 0, and --epochs 1 schedules epochs 0 '
                f'to 0: nothing is left to train; give a larger --epochs', watch=[tmp_path])


def test_a_resumed_run_that_stops_leaves_the_record_as_it_was(trained, image_folder, tmp_path, capsys):
    """Resumed with a schedule that overflows the weights at once: args.yaml, summary.csv and every checkpoint
    stay as the earlier run left them."""
    run = _copy_run(trained, tmp_path)
    cmd = _train_args(image_folder, tmp_path, 'run', '--task', 'ce', '--epochs', '3', '--sched', 'step',
                      '--decay-epochs', '1', '--decay-rate', '1e30', '--resume', str(run / 'last.pth.tar'))
    _drill_here(capsys, cmd, 1, 'non-finite loss (NaN or inf) at epoch 1, update 1', watch=[tmp_path])


def _file_size_limit(limit):
    """preexec_fn: writes past ``limit`` bytes fail (EFBIG, as a full disk fails them with ENOSPC)."""
    def apply():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _drill_full_disk(cmd, message, watch):
    before = {str(w): _tree(w) for w in watch}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300,
                          preexec_fn=_file_size_limit(200_000))
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.rstrip().splitlines()[-1]
    assert message in line and 'free on its disk' in line and '[enforce fail' not in line, line
    for w in watch:
        assert _tree(w) == before[str(w)], f'{w} changed'
    return line


def test_a_full_disk_writes_no_record_of_an_unsaved_epoch(trained, image_folder, tmp_path):
    """A checkpoint write that fails (the disk full; here the file size limit) ends the run in one line naming the
    file, the free space and the checkpoint to resume; no summary row, args.yaml or tmp.pth.tar of that epoch."""
    run = _copy_run(trained, tmp_path)
    line = _drill_full_disk(
        _train_args(image_folder, tmp_path, 'run', '--task', 'ce', '--epochs', '2', '--resume',
                    str(run / 'last.pth.tar')),
        f'train.py: error: --output {tmp_path}/run: writing {run / "last.pth.tar"} for epoch 1 failed (', [tmp_path])
    assert line.endswith(f'resume with --resume {run / "last.pth.tar"} (epoch 0)')
    # a new run: nothing of it stays (its folder, made for it, goes again)
    line = _drill_full_disk(_train_args(image_folder, tmp_path, 'new', '--task', 'ce', '--epochs', '1'),
                            'writing', [tmp_path])
    assert line.endswith('no checkpoint of this run was written') and not (tmp_path / 'new').exists()


# -- images read as they are, or refused by name ---------------------------------------------------------------------

def _image_copy(image_folder, tmp_path):
    copy = tmp_path / 'images'
    shutil.copytree(image_folder, copy)
    return copy


def _validate_results(capsys, cmd):
    """validate.py's printed results and its log, run in this process."""
    code, out, err = run_here(capsys, cmd)
    assert code == 0, err[-3000:]
    import json
    return json.loads(out.split('--result\n', 1)[1]), err


def test_16_bit_images_are_read_at_their_8_bit_values(trained, image_folder, tmp_path, capsys):
    """Every validation image saved again as 16-bit greyscale (v · 257): validate.py scores exactly as on the
    8-bit originals (PIL's own conversion would clip them to white)."""
    from PIL import Image
    wide = _image_copy(image_folder, tmp_path)
    for path in (wide / 'validation').rglob('*.png'):
        pixels = np.asarray(Image.open(path).convert('L'), dtype=np.uint16) * 257
        Image.fromarray(pixels).save(path)
        assert Image.open(path).mode == 'I;16'
    plain, _ = _validate_results(capsys, _validate_args(image_folder, trained['checkpoint']))
    sixteen, _ = _validate_results(capsys, _validate_args(wide, trained['checkpoint']))
    assert plain['images'] == sixteen['images'] == 8
    assert (plain['top1'], plain['loss']) == (sixteen['top1'], sixteen['loss'])


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_an_unreadable_image_stops_the_run_naming_it_unless_skipped(image_folder, tmp_path):
    images = _image_copy(image_folder, tmp_path)
    bad = sorted((images / 'train' / '2').glob('*.png'))[1]
    _truncate(bad)
    out = tmp_path / 'out'
    cmd = _train_args(images, out, 'bad', '--task', 'ce', '--epochs', '1')
    cmd[cmd.index('--workers') + 1] = '2'  # raised in a loader worker: still its one line
    _drill(cmd, 1, f'image {bad} (sample ', watch=[tmp_path])
    assert not out.exists()
    proc = subprocess.run(cmd + ['--skip-unreadable-images'], capture_output=True, text=True, env=_env(), cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'--train-split train: 1 of 16 images cannot be read and are left out: image {bad}' in proc.stderr
    from timm_paco.data import load_class_counts
    assert load_class_counts(str(out / 'bad')) == [4, 4, 3, 4]


def test_validate_scores_each_image_once(trained, image_folder, tmp_path, capsys):
    images = _image_copy(image_folder, tmp_path)
    bad = sorted((images / 'validation' / '1').glob('*.png'))[0]
    _truncate(bad)
    _drill_here(capsys, _validate_args(images, trained['checkpoint']), 1,
                f'image {bad} (sample 2) cannot be read', watch=[tmp_path])
    results, log = _validate_results(capsys, _validate_args(images, trained['checkpoint'],
                                                            '--skip-unreadable-images'))
    assert results['images'] == 7 and '--split validation: 1 of 8 images cannot be read and are left out' in log


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads a folder whatever its permissions')
def test_an_unreadable_class_folder_is_named(image_folder, tmp_path):
    images = _image_copy(image_folder, tmp_path)
    locked = images / 'train' / '3'
    locked.chmod(0)
    try:
        _drill(_train_args(images, tmp_path / 'out', 'locked', '--epochs', '1'), 1, f'{locked}: cannot be read')
    finally:
        locked.chmod(0o755)


# -- validate.py: one line for each combination ----------------------------------------------------------------------

def test_validate_refuses_combinations_naming_the_flag(trained, image_folder, tmp_path, capsys):
    cases = [
        (['--ncm', '--tau-norm', '5'], "--tau-norm 5: --ncm replaces the classifier whose weights tau-norm rescales"),
        (['--tau-norm', '1000'], '--tau-norm 1000: the class weight norms ('),
        (['--ncm', '--ncm-split', 'trian'], f'--ncm-split trian: {image_folder} has no trian folder'),
        (['--features-file', str(tmp_path)], f'--features-file {tmp_path}: a folder; name the file to write'),
    ]
    for extra, message in cases:
        _drill_here(capsys, _validate_args(image_folder, trained['checkpoint'], *extra), 1, message,
                    watch=[tmp_path])
    target = tmp_path / 'new' / 'features.safetensors'  # its folder is made, as for the other output files
    _validate_results(capsys, _validate_args(image_folder, trained['checkpoint'], '--features-file', str(target)))
    assert target.stat().st_size > 0


# -- train.py: a task and its flags ----------------------------------------------------------------------------------

def test_a_model_without_one_last_feature_map_is_refused_for_pbsd(image_folder, tmp_path, capsys):
    _drill_here(capsys, _train_args(image_folder, tmp_path, 'coat', '--task', 'dscl', '--model', 'coat_tiny',
                                    '--img-size', '224', '--epochs', '1'), 2,
                '--pbsd-weight 1.5: model coat_tiny gives its final features as a list, not one tensor',
                watch=[tmp_path])


def test_a_flag_the_task_ignores_is_ignored(image_folder, tmp_path, capsys):
    code, _, err = run_here(capsys, _train_args(image_folder, tmp_path, 'ce', '--task', 'ce', '--focal-gamma', '2',
                                                '--epochs', '1'))
    assert code == 0, err[-3000:]
    assert '--focal-gamma; ignored' in err and 'Task MultiViewClassificationTask: CELoss(' in err


# -- segmentation: labels checked before the run folder is made -------------------------------------------------------

SEG = [sys.executable, '-m', 'timm_paco.seg']
SEG_CLASSES = ('background', 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
               'Bag', 'Ankle boot')


@pytest.fixture(scope='module')
def seg_data(tmp_path_factory, fmnist_root):
    from timm_paco.seg.mosaics import MosaicRecipe, write_mosaics
    root = tmp_path_factory.mktemp('mosaics')
    write_mosaics(str(root), MosaicRecipe(n_train=16, n_test=8), source_root=fmnist_root)
    return root


def _seg_train(data, out, experiment, *extra):
    return SEG + ['train', '--data-dir', str(data), '--output', str(out), '--experiment', experiment, '--encoder',
                  'resnet18', '--arch', 'UPerNet', '--model-kwargs', 'decoder_channels=32', '-b', '4', '--device',
                  'cpu', '--workers', '0', '--epochs', '1', '--lr', '0.02', *extra]


def _relabel(data, tmp_path, change):
    """A copy of the mosaic set with ``change(mask array) -> mask array`` applied to every training label map."""
    from PIL import Image
    copy = tmp_path / 'relabelled'
    shutil.copytree(data, copy)
    for path in sorted((copy / 'train' / 'masks').glob('*.png')):
        Image.fromarray(change(np.asarray(Image.open(path)).copy())).save(path)
    return copy


def test_segmentation_labels_are_checked_before_the_run_folder_is_made(seg_data, trained, tmp_path, capsys):
    out = tmp_path / 'out'
    _drill_here(capsys, _seg_train(seg_data, out, 'ignore', '--ignore-index', '1'), 1,
                "--ignore-index 1: that is class 'T-shirt/top' of --num-classes 11, which would leave it out of the "
                "loss and the mIoU", watch=[tmp_path])

    def stray(mask):
        mask[0, 0] = 20
        return mask
    data = _relabel(seg_data, tmp_path, stray)
    first = sorted((data / 'train' / 'masks').glob('*.png'))[0]
    _drill_here(capsys, _seg_train(data, out, 'stray'), 1,
                f'{first}: label 20 is neither a class of --num-classes 11 (0 to 10) nor --ignore-index 255',
                watch=[tmp_path])
    _drill_here(capsys, _seg_train(seg_data, out, 'resume', '--resume', str(trained['checkpoint'])), 1,
                f'--resume {trained["checkpoint"]}: ', watch=[tmp_path])
    assert not out.exists()


def test_segmentation_names_classes_without_training_pixels_and_refuses_a_resume_with_nothing_left(
        seg_data, tmp_path, capsys):
    import json
    pixels = json.loads((seg_data / 'mosaics.json').read_text())['pixels']['train']
    rare = min((c for c in range(1, len(pixels)) if pixels[c]), key=lambda c: pixels[c])  # has pixels until now
    data = _relabel(seg_data, tmp_path, lambda mask: np.where(mask == rare, 0, mask).astype(np.uint8))
    code, _, err = run_here(capsys, _seg_train(data, tmp_path, 'run'))
    assert code == 0, err[-3000:]
    warning = next(line for line in err.splitlines() if 'have no training pixels in train' in line)
    assert f'{rare} ({SEG_CLASSES[rare]})' in warning
    last = tmp_path / 'run' / 'last.pth.tar'
    _drill_here(capsys, _seg_train(data, tmp_path, 'run', '--resume', str(last)), 2,
                f'--resume {last}: its run finished epoch 0, and --epochs 1 schedules epochs 0 to 0: nothing is '
                f'left', watch=[tmp_path])


def test_segmentation_quickstart_refuses_a_repeated_seed(tmp_path, capsys):
    _drill_here(capsys, SEG + ['quickstart', '--seeds', '1', '1', '--output', str(tmp_path / 'qs')], 2,
                '--seeds: 1 given more than once', watch=[tmp_path])
