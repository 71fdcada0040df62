"""train.py end to end on CPU with real Fashion-MNIST images: every task trains, checkpoints and resumes
exactly; a 2-process gloo DDP run gives the 1-process loss of the same global batch."""
import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import yaml
import timm
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from timm_paco import train  # noqa: E402
from timm_paco.cli.train_args import parse_args  # noqa: E402
from timm_paco.cli.train_checks import flag_warnings, unused_task_flags  # noqa: E402
from timm_paco.cli.train_model import create_train_model, resolve_method  # noqa: E402
from timm_paco.tasks.initial_weights import load_initial_projector  # noqa: E402
from timm_paco.methods import create_task  # noqa: E402

NUM_CLASSES = 4  # conftest's image_folder


def _args(image_folder, output, experiment, *extra, device='cpu'):
    return [
        '--data-dir', image_folder, '--model', 'test_convnext', '--img-size', '32',
        '--num-classes', str(NUM_CLASSES), '-b', '4', '--lr', '0.02', '--warmup-epochs', '0',
        '--device', device, '--workers', '0', '--seed', '0', '--paco-queue-size', '8', '--log-interval', '2',
        '--output', str(output), '--experiment', experiment, *extra,
    ]


def _summary(folder):
    with open(os.path.join(folder, 'summary.csv')) as f:
        return list(csv.DictReader(f))


def _checkpoint(folder, name='last.pth.tar'):
    return torch.load(os.path.join(folder, name), map_location='cpu', weights_only=False)


def _assert_tensors_equal(a, b, where):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_tensors_equal(a[key], b[key], f'{where}/{key}')
    elif torch.is_tensor(a):
        assert torch.equal(a, b), where


TASKS = [
    ('ce', ['--paco-views', 'randcls_sim']),  # CE over two views: the benchmark's baseline
    ('balanced-softmax', ['--no-prefetcher']),  # timm's own single-view transform
    ('paco', ['--no-prefetcher']),
    # prefetcher (on CPU); a loader worker, reseeded every epoch; the optional queue of the seeds' LT code
    ('gpaco', ['--workers', '1', '--gpaco-queue-size', '12']),
    # the DSCL loss on PaCo's key encoder and queue, with PBSD's patches through the prefetcher
    ('dscl', ['--dscl-alpha', '0.2', '--pbsd-patches', '2', '--pbsd-patch-size', '32']),
    ('focal', ['--focal-gamma', '0.5', '--no-prefetcher']),
    ('class-balanced', ['--cb-beta', '0.9', '--sampler', 'square-root']),
    # the resume from epoch 0's checkpoint crosses the deferred re-weighting's switch at epoch 1
    ('ldam-drw', ['--drw-epoch', '1', '--no-prefetcher']),
]


@pytest.mark.parametrize('task,extra', TASKS, ids=[t for t, _ in TASKS])
def test_task_trains_checkpoints_and_resumes_exactly(image_folder, tmp_path, task, extra):
    straight = _args(image_folder, tmp_path, 'straight', '--task', task, '--epochs', '2', *extra)
    train.main(straight)
    folder = tmp_path / 'straight'
    rows = _summary(folder)
    assert [int(r['epoch']) for r in rows] == [0, 1]
    # dscl's loss is all contrast: its log-denominator grows as the queue fills in epoch 0; focal and the
    # class-balanced run (re-weighted, re-sampled) move too little in 2 epochs of 4 steps to rank
    if task not in ('dscl', 'focal', 'class-balanced', 'ldam-drw'):
        assert float(rows[1]['train_loss']) < float(rows[0]['train_loss'])
    assert 0.0 <= float(rows[1]['eval_top1']) <= 100.0
    if task in ('paco', 'gpaco'):
        for r in rows:
            total = float(r['train_loss_centre']) + float(r['train_loss_contrast'])
            assert abs(total - float(r['train_loss'])) < 1e-4
    with open(folder / 'class_counts.json') as f:
        assert json.load(f)['class_counts'] == [4] * NUM_CLASSES

    first = _checkpoint(folder, 'checkpoint-0.pth.tar')
    assert first['epoch'] == 0 and 'optimizer' in first
    if task in ('paco', 'dscl'):
        assert set(first['task_state']) == {'key_encoder', 'queue', 'projector', 'projector_args'}
        assert int(first['task_state']['queue']['valid'].sum()) == 8
    if task == 'dscl':
        for r in rows:
            total = float(r['train_loss_contrast']) + 1.5 * float(r['train_loss_pbsd'])
            assert abs(total - float(r['train_loss'])) < 1e-4 and float(r['train_loss_pbsd']) > 0
        assert first['args'].dscl_alpha == 0.2 and first['args'].pbsd_patches == 2
        # the classifier is not trained in stage 1: it keeps its initial weights
        head = [k for k in first['state_dict'] if k.startswith('head.fc.')]
        assert head and all(torch.equal(first['state_dict'][k], _checkpoint(folder)['state_dict'][k]) for k in head)
    if task in ('focal', 'class-balanced'):
        assert (first['args'].focal_gamma, first['args'].cb_beta) == ((0.5, None) if task == 'focal' else (None, 0.9))
    if task == 'ldam-drw':  # the raw class weights; the model's classifier holds them normalised, no bias
        raw = first['task_state']['ldam']['weight']
        torch.testing.assert_close(first['state_dict']['head.fc.weight'], torch.nn.functional.normalize(raw, dim=1))
        assert float(first['state_dict']['head.fc.bias'].abs().max()) == 0.0 and first['args'].drw_epoch == 1
    if task == 'gpaco':  # 16 images' second views through a 12-slot ring
        assert set(first['task_state']) == {'queue', 'projector', 'projector_args'}
        queue = first['task_state']['queue']
        assert int(queue['valid'].sum()) == 12 and int(queue['ptr']) == 16 % 12

    # the checkpoint's model entry is the plain timm model: stock timm's own strict loader reads it
    stock = timm.create_model('test_convnext', num_classes=NUM_CLASSES, checkpoint_path=str(folder / 'last.pth.tar'))
    _assert_tensors_equal(stock.state_dict(), _checkpoint(folder)['state_dict'], 'stock timm')

    # a new process state resumes from the epoch-0 checkpoint and must end where the straight run ended
    resumed = _args(image_folder, tmp_path, 'resumed', '--task', task, '--epochs', '2', *extra,
                    '--resume', str(folder / 'checkpoint-0.pth.tar'))
    train.main(resumed)
    a, b = _checkpoint(folder), _checkpoint(tmp_path / 'resumed')
    assert b['epoch'] == 1 and _summary(tmp_path / 'resumed')[0]['epoch'] == '1'
    _assert_tensors_equal(a['state_dict'], b['state_dict'], 'state_dict')
    _assert_tensors_equal(a['optimizer']['state'], b['optimizer']['state'], 'optimizer')
    assert a.keys() == b.keys()
    if 'task_state' in a:
        _assert_tensors_equal(a['task_state'], b['task_state'], 'task_state')
    if task == 'gpaco':  # resumed into its own folder: epoch 1 is trained again and its summary row replaced
        train.main(straight + ['--resume', str(folder / 'checkpoint-0.pth.tar')])
        lines = (folder / 'summary.csv').read_text().splitlines()
        assert [line.split(',')[0] for line in lines] == ['epoch', '0', '1']
        assert _summary(folder) == rows


@pytest.mark.parametrize('task', ['paco', 'gpaco'])
def test_bf16_autocast_and_channels_last(image_folder, tmp_path, task):
    # the mixed-precision path on the CPU: bf16 autocast around the model, contrastive loss in float32. At lr 0
    # every step sees the initial weights, so the epoch's losses differ from a float32 run's only by the model's
    # bf16 arithmetic (0.02-0.6% here; GPaCo's contrast term 1.1%, its queue holding the bf16 embeddings of every
    # step). With training the runs drift apart: 4 steps at lr 0.02 moved GPaCo's
    # centre term 2% on a CPU with AMX bf16 units
    frozen = ['--task', task, '--epochs', '1', '--no-prefetcher', '--lr', '0']
    train.main(_args(image_folder, tmp_path, task, *frozen, '--amp', '--amp-dtype', 'bfloat16', '--channels-last'))
    train.main(_args(image_folder, tmp_path, task + '32', *frozen))
    row, row32 = _summary(tmp_path / task)[0], _summary(tmp_path / (task + '32'))[0]
    for key in ('train_loss', 'train_loss_centre', 'train_loss_contrast'):
        assert float(row[key]) == pytest.approx(float(row32[key]), rel=0.02), key
    # autocast leaves the weights in float32
    assert all(t.dtype == torch.float32 for t in _checkpoint(tmp_path / task)['state_dict'].values()
               if t.is_floating_point())


def test_conflicting_flag_stops_with_message(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(_args(image_folder, tmp_path, 'mixup', '--task', 'paco', '--mixup', '0.8', '--epochs', '1'))
    assert '--mixup' in capsys.readouterr().err
    assert not (tmp_path / 'mixup').exists()
    with pytest.raises(SystemExit):
        train.main(_args(image_folder, tmp_path, 'tau', '--task', 'ce', '--prior-tau', '0.5', '--epochs', '1'))
    assert '--prior-tau 0.5: --task ce adds no class prior' in capsys.readouterr().err
    assert not (tmp_path / 'tau').exists()
    for extra, message in ((['--task', 'paco', '--model-dtype', 'bfloat16'], '--model-dtype bfloat16: an exponential'),
                           (['--task', 'ce', '--model-ema', '--model-dtype', 'float16'], '--model-dtype float16: an'),
                           (['--task', 'gpaco', '--tta', '2'], '--tta 2: the eval loader makes no augmented copies'),
                           (['--task', 'ce', '--log-interval', '0'], '--log-interval: expected an integer >= 1'),
                           (['--task', 'ce', '--val-interval', '0'], '--val-interval: expected an integer >= 1'),
                           (['--task', 'ce', '--imb-factor', '2'], '--imb-factor: expected a ratio n_min / n_max in'),
                           (['--task', 'gpaco', '--paco-views', 'randcls_bogus'],
                            "--paco-views: unknown view recipe 'randcls_bogus' (unknown view(s) ['bogus'])")):
        with pytest.raises(SystemExit):
            train.main(_args(image_folder, tmp_path, 'refused', '--epochs', '1', *extra))
        assert message in capsys.readouterr().err
    assert not (tmp_path / 'refused').exists()
    # numbers out of range are argparse's usage errors: before, --grad-accum-steps 0 was quietly taken as 1,
    # --paco-proj-dim 0 / --warmup-epochs -1 / -vb 0 / --in-chans 0 / --lr nan / --hflip 2 / --weight-decay -1
    # trained, and --epochs 0 / --checkpoint-hist 0 / --lr-base-size 0 stopped in an assert or a division by zero
    at_least = 'expected an integer >= {}, got'.format
    for flag, values, message in (
            ('--epochs', ['0'], at_least(1)), ('--grad-accum-steps', ['0'], at_least(1)),
            ('--paco-proj-dim', ['0'], at_least(1)), ('--warmup-epochs', ['-1'], at_least(0)),
            ('--validation-batch-size', ['0'], at_least(1)), ('--in-chans', ['0'], at_least(1)),
            ('--checkpoint-hist', ['0'], at_least(1)), ('--lr-base-size', ['0'], at_least(1)),
            ('--workers', ['-1'], at_least(0)), ('--seed', ['-1'], at_least(0)),
            ('--input-size', ['3', '0', '32'], at_least(1)),
            ('--lr', ['nan'], 'expected a finite number >= 0, got nan'),
            ('--weight-decay', ['-1'], 'expected a finite number >= 0, got -1'),
            ('--paco-temperature', ['0'], 'expected a finite number > 0, got 0'),
            ('--hflip', ['2'], 'expected a number in [0, 1], got 2'),
            ('--smoothing', ['1'], 'expected a number in [0, 1), got 1'),
            ('--paco-momentum', ['1.5'], 'expected a number in [0, 1), got 1.5'),
            ('--prior-tau', ['inf'], 'expected a finite number, got inf')):
        with pytest.raises(SystemExit):  # parsing stops before any data is read
            train.main(_args(image_folder, tmp_path, 'refused', '--task', 'paco', flag, *values))
        err = capsys.readouterr().err
        assert f'{flag}: {message}' in err, (flag, err)
    assert not (tmp_path / 'refused').exists()
    for opt in ('adahessian', 'lookahead_adahessian'):  # double backward through hand-written gradients
        with pytest.raises(SystemExit):
            train.main(_args(image_folder, tmp_path, 'hessian', '--task', 'gpaco', '--opt', opt, '--epochs', '1'))
        assert f'--opt {opt}: a second-order optimiser' in capsys.readouterr().err
    assert not (tmp_path / 'hessian').exists()


def test_task_flags_the_task_does_not_read_are_named():
    parser, args = parse_args(['--paco-alpha', '0.5', '--paco-queue-size', '16', '--paco-logit-adjust', 'off'])
    assert unused_task_flags(parser, args, 'ce') == ['--paco-alpha', '--paco-queue-size', '--paco-logit-adjust']
    assert unused_task_flags(parser, args, 'gpaco') == ['--paco-queue-size']
    assert unused_task_flags(parser, args, 'paco') == []
    assert flag_warnings(parser, args, 'gpaco') == ['--task gpaco does not use --paco-queue-size; ignored']
    parser, args = parse_args(['--use-multi-epochs-loader'])
    assert len(flag_warnings(parser, args, 'ce')) == 1
    assert 'a resumed run does not repeat the augmentations' in flag_warnings(parser, args, 'ce')[0]


@pytest.mark.parametrize('loader', [[], ['--no-prefetcher']], ids=['prefetcher', 'no-prefetcher'])
def test_one_channel_model_trains_on_grayscale_views(image_folder, tmp_path, loader):
    # timm keeps the pretrained cfg's 3-channel input size, mean and std for --in-chans 1: the data config follows
    # the model, so images load as 'L' and normalise with one value
    train.main(_args(image_folder, tmp_path, 'gray', '--task', 'gpaco', '--in-chans', '1', '--epochs', '1', *loader))
    args = yaml.safe_load((tmp_path / 'gray' / 'args.yaml').read_text())
    assert args['in_chans'] == 1
    state = _checkpoint(tmp_path / 'gray')['state_dict']
    assert state['stem.0.weight'].shape[1] == 1  # the plain timm model's keys; the projector is task state
    row = _summary(tmp_path / 'gray')[0]
    assert torch.isfinite(torch.tensor(float(row['train_loss']))) and 0 <= float(row['eval_top1']) <= 100


def test_num_classes_must_match_the_dataset(image_folder, tmp_path):
    # too many: the 4 class folders' counts would be padded with empty classes (and a long-tail prior switched on)
    with pytest.raises(ValueError, match=r'--num-classes 10: the dataset declares 4 classes, .*4 class folders'):
        train.main(_args(image_folder, tmp_path, 'wide', '--task', 'paco', '--epochs', '1') + ['--num-classes', '10'])
    # too few, for a task that needs no class counts too: labels 2 and 3 have no class
    with pytest.raises(ValueError, match=r'--num-classes 2: '):
        train.main(_args(image_folder, tmp_path, 'narrow', '--task', 'ce', '--epochs', '1') + ['--num-classes', '2'])
    assert not (tmp_path / 'wide').exists() and not (tmp_path / 'narrow').exists()


def test_batch_larger_than_training_set_stops_with_message(image_folder, tmp_path, capsys):
    # 16 training images, batch 32: timm's scheduler would assert on 0 updates per epoch
    with pytest.raises(SystemExit):
        train.main(_args(image_folder, tmp_path, 'big-batch', '--task', 'gpaco', '--epochs', '1', '-b', '32'))
    err = capsys.readouterr().err
    assert '-b/--batch-size 32' in err and '16 training samples' in err


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


DDP_TASKS = [
    ('paco', ['--epochs', '1']),
    # GPaCo's optional queue: epoch 2's one step contrasts against the 8 embeddings gathered in epoch 1
    ('gpaco', ['--epochs', '2', '--gpaco-queue-size', '8']),
    # the contrast is the all-gathered global batch, whatever the rank count; the second epoch's step is the one
    # that needs the untrained classifier frozen (DDP waits for gradients of every trainable parameter)
    ('dscl', ['--epochs', '2', '--pbsd-weight', '0']),
]


@pytest.mark.parametrize('task,extra', DDP_TASKS, ids=[t for t, _ in DDP_TASKS])
def test_ddp_loss_matches_one_process(image_folder, tmp_path, task, extra):
    """2 gloo ranks x 4 images vs 1 process x 8 images: same global batch (one step an epoch), same loss."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    common = ['--task', task, *extra, '--no-aug', '--paco-proj-type', 'mlp3', '--val-split', '',
              '--no-prefetcher', '--train-split', 'validation']  # 8 images: 4 classes x 2
    one = _args(image_folder, tmp_path, 'one', *common)
    one[one.index('-b') + 1] = '8'
    two = _args(image_folder, tmp_path, 'two', *common)
    train.main(one)  # the one process: this one
    subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
         '--master_port', str(_free_port()), os.path.join(REPO, 'train.py'), *two],
        check=True, env=env, cwd=tmp_path, capture_output=True)
    rows_one, rows_two = _summary(tmp_path / 'one'), _summary(tmp_path / 'two')
    assert len(rows_one) == len(rows_two) == int(extra[1])
    for row_one, row_two in zip(rows_one, rows_two):
        assert float(row_two['train_loss']) == pytest.approx(float(row_one['train_loss']), rel=1e-5)
    # the queue (all-gathered embeddings) holds the same 8 labels in both runs
    q_one = _checkpoint(tmp_path / 'one')['task_state']['queue']
    q_two = _checkpoint(tmp_path / 'two')['task_state']['queue']
    assert int(q_two['valid'].sum()) == 8
    assert sorted(q_one['labels'].tolist()) == sorted(q_two['labels'].tolist())


def test_ddp_pbsd_trains_over_several_steps(image_folder, tmp_path):
    """2 gloo ranks x 2 images, 2 steps an epoch, DSCL with PBSD: the patches' student and teacher go through the
    one DDP forward; each rank distils its own images (their augmentations differ from a 1-process run's, so
    the PBSD term is not compared with one)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    two = _args(image_folder, tmp_path, 'two', '--task', 'dscl', '--epochs', '2', '--val-split', '',
                '--train-split', 'validation', '--pbsd-patches', '2', '--pbsd-patch-size', '32')
    two[two.index('-b') + 1] = '2'
    subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
         '--master_port', str(_free_port()), os.path.join(REPO, 'train.py'), *two],
        check=True, env=env, cwd=tmp_path, capture_output=True)
    rows = _summary(tmp_path / 'two')
    assert len(rows) == 2
    for r in rows:
        total = float(r['train_loss_contrast']) + 1.5 * float(r['train_loss_pbsd'])
        assert abs(total - float(r['train_loss'])) < 1e-4 and float(r['train_loss_pbsd']) > 0
    assert int(_checkpoint(tmp_path / 'two')['task_state']['queue']['valid'].sum()) == 8


def test_initial_checkpoint_starts_model_and_projector(tmp_path):
    """--initial-checkpoint reads what train.py writes (plain state_dict, projector in task_state): the model loads
    strictly, a contrastive task takes the projector, a CE task ignores it."""
    torch.manual_seed(0)
    source = create_task('paco', timm.create_model('test_convnext', num_classes=NUM_CLASSES), queue_size=8,
                         verbose=False)
    with torch.no_grad():
        for p in source.module.parameters():
            p.add_(torch.randn_like(p))
    state = source.get_checkpoint_state()
    path = str(tmp_path / 'init.pth.tar')
    torch.save(state, path)
    for task_name in ('paco', 'ce'):
        parser, args = parse_args(['--model', 'test_convnext', '--num-classes', str(NUM_CLASSES),
                                            '--task', task_name, '--initial-checkpoint', path])
        model, projector = create_train_model(args, 3)
        task = resolve_method(args, model).name
        _assert_tensors_equal(model.state_dict(), source.model.state_dict(), 'model')
        target = create_task(task, model, queue_size=8 if task == 'paco' else None, verbose=False)
        assert load_initial_projector(target, projector, path) == (task == 'paco')
        if task == 'paco':
            _assert_tensors_equal(target.module.projector.state_dict(), source.module.projector.state_dict(), 'proj')
    other = create_task('paco', timm.create_model('test_convnext', num_classes=NUM_CLASSES), verbose=False,
                        projector=dict(proj_dim=4))
    with pytest.raises(ValueError, match=r'^--initial-checkpoint .*init\.pth\.tar: checkpoint projector does not fit'):
        load_initial_projector(other, projector, path)
    torch.save({'state_dict': {'nope.weight': torch.zeros(1)}}, str(tmp_path / 'bad.pth.tar'))
    parser, args = parse_args(['--model', 'test_convnext', '--initial-checkpoint',
                                        str(tmp_path / 'bad.pth.tar')])
    with pytest.raises(ValueError, match=r'--initial-checkpoint .*bad\.pth\.tar does not match model test_convnext'):
        create_train_model(args, 3)


def test_two_stage_dscl_then_crt_with_class_balanced_sampling_then_validate(image_folder, tmp_path, capsys):
    """Stage 1: DSCL + PBSD. Stage 2 on its checkpoint: --classifier-retrain crt with --sampler class-balanced
    (CE, whatever the stage-1 task): every tensor but the classifier's (BatchNorm statistics included) stays the
    stage-1 model's, the classifier trains, a resume ends where the unbroken run ends, validate.py reads it."""
    train.main(_args(image_folder, tmp_path, 'stage1', '--task', 'dscl', '--epochs', '1', '--pbsd-patches', '2',
                     '--pbsd-patch-size', '32', '--val-split', ''))
    stage1 = _checkpoint(tmp_path / 'stage1')['state_dict']
    second = ['--classifier-retrain', 'crt', '--sampler', 'class-balanced', '--epochs', '2', '--initial-checkpoint',
              str(tmp_path / 'stage1' / 'last.pth.tar'), '--lr', '0.5']
    three = _args(image_folder, tmp_path, 'stage2-3', *second)
    three[three.index('--num-classes') + 1] = '3'
    with pytest.raises(ValueError, match='class count mismatch: checkpoint classifier has 4 classes, model built '
                                         'with num_classes=3'):
        train.main(three)
    train.main(_args(image_folder, tmp_path, 'stage2', *second))
    folder = tmp_path / 'stage2'
    final = _checkpoint(folder)
    assert final['args'].task == 'ce' and final['args'].sampler == 'class-balanced'
    assert set(final['state_dict']) == set(stage1)
    for key, value in stage1.items():
        if key.startswith('head.fc.'):
            assert not torch.equal(final['state_dict'][key], value), key
        else:
            assert torch.equal(final['state_dict'][key], value), key
    assert 'task_state' not in final or not final['task_state']  # no projector, key encoder or queue in stage 2
    train.main(_args(image_folder, tmp_path, 'stage2-resumed', *second,
                     '--resume', str(folder / 'checkpoint-0.pth.tar')))
    _assert_tensors_equal(final['state_dict'], _checkpoint(tmp_path / 'stage2-resumed')['state_dict'], 'resumed')

    from timm_paco import validate
    results = validate.main(['--data-dir', image_folder, '--split', 'validation', '--model', 'test_convnext',
                             '--num-classes', str(NUM_CLASSES), '--img-size', '32', '--device', 'cpu',
                             '--workers', '0', '--checkpoint', str(folder / 'last.pth.tar'),
                             '--results-file', str(tmp_path / 'results.json')])
    # the same model on the same validation images as the run's last evaluation
    assert results['top1'] == pytest.approx(float(_summary(folder)[-1]['eval_top1']), abs=1e-6)
    assert (tmp_path / 'results.json').is_file()


@pytest.mark.parametrize('extra,message', [
    (['--classifier-retrain', 'crt'], '--classifier-retrain crt trains the classifier of a stage-1 model: give'),
    (['--classifier-retrain', 'lws', '--task', 'paco', '--initial-checkpoint', 'x.pth.tar'],
     '--classifier-retrain lws: the second stage trains the classifier with --task ce / balanced-softmax / focal'),
    (['--sampler', 'square-root', '--mixup', '0.2'], '--sampler square-root does not combine with --mixup'),
])
def test_second_stage_flags_that_cannot_work_stop_with_one_line(image_folder, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        train.main(_args(image_folder, tmp_path, 'bad', '--epochs', '1', *extra))
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()


def test_vit_with_pbsd_trains_resumes_and_exports_a_plain_timm_model(image_folder, tmp_path):
    """DSCL + PBSD on a small ViT (tokens: the teacher pools its last block's normalised patch tokens; 16-px
    patches of the 32-px views): trains, resumes exactly, and its Hub export loads with timm's local-dir: as the
    plain ViT with the trained weights."""
    from timm_paco.hub import export_checkpoint
    common = ['--model', 'test_vit', '--task', 'dscl', '--epochs', '2', '--pbsd-patches', '2',
              '--pbsd-patch-size', '16']
    straight = _args(image_folder, tmp_path, 'vit', *common)
    train.main(straight)
    rows = _summary(tmp_path / 'vit')
    assert all(float(r['train_loss_pbsd']) > 0 for r in rows)
    train.main(straight[:straight.index('--experiment') + 1] + ['vit-resumed'] + straight[
        straight.index('--experiment') + 2:] + ['--resume', str(tmp_path / 'vit' / 'checkpoint-0.pth.tar')])
    a, b = _checkpoint(tmp_path / 'vit'), _checkpoint(tmp_path / 'vit-resumed')
    _assert_tensors_equal(a['state_dict'], b['state_dict'], 'state_dict')
    _assert_tensors_equal(a['task_state'], b['task_state'], 'task_state')
    out = export_checkpoint(str(tmp_path / 'vit' / 'last.pth.tar'), str(tmp_path / 'export'), repo_name='org/vit')
    local = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    plain = timm.create_model('test_vit', num_classes=NUM_CLASSES)  # as train.py built it (dynamic image size)
    plain.load_state_dict(a['state_dict'])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(local(x), plain.eval()(x))
    assert type(local).__name__ == 'VisionTransformer'


def test_papers_optimizer_decays_every_parameter(image_folder, tmp_path):
    """--opt momentum --wd-bias-and-norm is the papers' torch SGD (no Nesterov, decay on biases and norm weights
    too); without the flag timm's factory keeps biases and norm weights out of weight decay."""
    common = ['--task', 'gpaco', '--epochs', '1', '--weight-decay', '5e-4', '--gpaco-queue-size', '0']
    train.main(_args(image_folder, tmp_path, 'papers', *common, '--opt', 'momentum', '--wd-bias-and-norm'))
    train.main(_args(image_folder, tmp_path, 'timm', *common, '--opt', 'sgd'))
    papers = _checkpoint(tmp_path / 'papers')['optimizer']['param_groups']
    timm_groups = _checkpoint(tmp_path / 'timm')['optimizer']['param_groups']
    assert [(g['weight_decay'], g['nesterov']) for g in papers] == [(5e-4, False)]
    assert sorted(g['weight_decay'] for g in timm_groups) == [0.0, 5e-4] and all(g['nesterov'] for g in timm_groups)
    decayed = {p for g in papers for p in g['params']}
    assert len(decayed) == sum(len(g['params']) for g in timm_groups)  # every parameter, biases included


# -- timm 1.0.31's --stop-epoch, --save-epochs and --resume auto ------------------------------------------------------

def test_stop_epoch_milestones_and_resume_auto_go_on_as_one_run(image_folder, tmp_path, capsys):
    """Stopped after 2 of 4 epochs with milestones at 1 and 2, then the same command without the stop: the run goes
    on in its folder and ends with the uninterrupted run's weights; once finished, the command does nothing."""
    common = ['--task', 'ce', '--epochs', '4', '--val-interval', '2', '--val-split', 'validation']
    train.main(_args(image_folder, tmp_path, 'whole', *common))
    auto = _args(image_folder, tmp_path, 'auto', *common, '--resume', 'auto', '--save-epochs', '1', '2')
    train.main(auto + ['--stop-epoch', '2'])
    run = tmp_path / 'auto'
    # milestones are evaluated whatever --val-interval says, and so is the stop
    assert [int(r['epoch']) for r in _summary(run)] == [0, 1]
    assert [_checkpoint(run, f'milestone-{n}.pth.tar')['epoch'] for n in (1, 2)] == [0, 1]
    assert _checkpoint(run)['epoch'] == 1
    recorded = yaml.safe_load((run / 'args.yaml').read_text())
    assert (recorded['resume'], recorded['epochs'], recorded['stop_epoch']) == ('auto', 4, 2)
    capsys.readouterr()
    train.main(auto)
    assert 'resuming ' + str(run / 'last.pth.tar') in capsys.readouterr().err
    assert [int(r['epoch']) for r in _summary(run)] == [0, 1, 3]
    _assert_tensors_equal(_checkpoint(run)['state_dict'], _checkpoint(tmp_path / 'whole')['state_dict'], 'model')
    before = (run / 'summary.csv').read_bytes()
    assert train.main(auto) == []
    assert 'finished epoch 3, the last of its --epochs 4; nothing is left to train' in capsys.readouterr().err
    assert (run / 'summary.csv').read_bytes() == before


@pytest.mark.parametrize('extra,message', [
    (['--stop-epoch', '5'], '--stop-epoch 5: the run has --epochs 4'),
    (['--save-epochs', '2', '5'], '--save-epochs 5: the run has --epochs 4'),
    (['--save-epochs', '1', '1'], '--save-epochs: 1 given more than once'),
    (['--resume', 'auto', '--experiment', ''], '--resume auto: resumes in the --experiment folder'),
])
def test_epoch_marks_are_checked(image_folder, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        train.main(_args(image_folder, tmp_path, 'marks', '--task', 'ce', '--epochs', '4', *extra))
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'marks').exists()
