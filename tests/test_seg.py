"""GPaCo segmentation end to end on real Fashion-MNIST mosaics: the mosaics, the smp model on timm encoders, the
trainer (train, resume, refusals), the evaluator and its files, the metrics, and the quick start."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from timm_paco.checkpoint_io import load_checkpoint_file
from timm_paco.losses import PixelPaCoLoss
from timm_paco.seg.checkpoint import load_seg_model
from timm_paco.seg.dataset import SegFolder
from timm_paco.seg.metrics import SegMetrics, rare_classes
from timm_paco.seg.model import PaCoSegModel, check_input_size, create_seg_model
from timm_paco.seg.mosaics import MosaicRecipe, SEG_CLASSES, write_mosaics
from timm_paco.seg.task import SegmentationTask

from _cli import run_here

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = MosaicRecipe(n_train=16, n_test=8)
# A small Swin (its own depths / widths, 64 px, 4-token windows) keeps the transformer encoder's test fast.
SWIN = dict(img_size=64, window_size=4, embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))


@pytest.fixture(scope='module')
def mosaics(tmp_path_factory, fmnist_root):
    root = str(tmp_path_factory.mktemp('mosaics'))
    return root, write_mosaics(root, TINY, source_root=fmnist_root)


def _seg(capsys, *argv):
    """``python -m timm_paco.seg …`` through its entry point, in this process (``_cli.run_here``): (exit code,
    stdout, stderr)."""
    return run_here(capsys, [sys.executable, '-m', 'timm_paco.seg', *argv])


def _train_flags(data, out, experiment, *extra):
    return ['train', '--data-dir', data, '--output', out, '--experiment', experiment, '--encoder', 'resnet18',
            '--arch', 'UPerNet', '--model-kwargs', 'decoder_channels=32', '-b', '4', '--device', 'cpu',
            '--workers', '0', '--epochs', '2', '--lr', '0.02', *extra]


def test_mosaics_are_labelled_garments_drawn_from_a_long_tail(mosaics, fmnist_root, tmp_path):
    root, meta = mosaics
    assert meta['classes'] == list(SEG_CLASSES) and meta['recipe']['n_train'] == 16
    for split, count in (('train', TINY.n_train), ('test', TINY.n_test)):
        names = sorted(os.listdir(os.path.join(root, split, 'masks')))
        assert len(names) == count
        masks = [np.asarray(Image.open(os.path.join(root, split, 'masks', n))) for n in names]
        counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=len(SEG_CLASSES))
        assert counts.tolist() == meta['pixels'][split]  # the record is the label maps' own count
        for name, mask in zip(names, masks):
            image = np.asarray(Image.open(os.path.join(root, split, 'images', name)))
            assert image.shape == (64, 64, 3) and mask.shape == (64, 64) and mask.max() <= 10
            # a garment pixel is one brighter than the threshold; the rest is background
            assert ((mask > 0) == (image[..., 0] > TINY.threshold)).all()
    # the same recipe and seed write the same files; another recipe in the folder is refused
    again = str(tmp_path / 'again')
    write_mosaics(again, TINY, source_root=fmnist_root)
    for split in ('train', 'test'):
        for sub in ('images', 'masks'):
            first = os.path.join(root, split, sub, '00003.png')
            assert open(first, 'rb').read() == open(os.path.join(again, split, sub, '00003.png'), 'rb').read()
    with pytest.raises(ValueError, match='another recipe'):
        write_mosaics(again, MosaicRecipe(n_train=16, n_test=8, seed=1), source_root=fmnist_root)


def test_long_tailed_training_draw(fmnist_root, tmp_path):
    """400 canvases: the head garment gets most garment pixels and the tail garments the fewest."""
    meta = write_mosaics(str(tmp_path), MosaicRecipe(n_train=400, n_test=1), source_root=fmnist_root)
    garments = meta['pixels']['train'][1:]
    assert garments[0] == max(garments) and garments[0] > 20 * min(garments)
    assert min(garments) in garments[5:]


@pytest.mark.parametrize('encoder,arch,kwargs', [
    ('resnet18', 'UPerNet', dict(decoder_channels=32)),
    ('convnext_atto', 'FPN', {}),
    ('swin_tiny_patch4_window7_224', 'UPerNet', dict(SWIN, decoder_channels=32)),
], ids=['resnet18-upernet', 'convnext-fpn', 'swin-upernet'])
def test_model_on_timm_encoders_trains_and_gives_dense_outputs(encoder, arch, kwargs, mosaics, tmp_path):
    torch.manual_seed(0)
    model = create_seg_model(encoder, 11, arch, proj_dim=16, **kwargs)
    task = SegmentationTask(model, PixelPaCoLoss(11, num_pixels=64))
    data = SegFolder(mosaics[0], 'train', train=True)
    images, labels = (torch.stack(t) for t in zip(*[data[i] for i in range(4)]))
    optimizer = torch.optim.SGD(task.get_trainable_module().parameters(), lr=0.01)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(2):
        out = task(images, labels)
        optimizer.zero_grad()
        out['loss'].backward()
        optimizer.step()
    assert torch.isfinite(out['loss']) and out['loss'] > out['loss_ce'] > 0 and out['loss_pixel_paco'] > 0
    assert out['output'].shape == (4, 11, 64, 64)  # logits upsampled to the labels
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith('projector.') for k in moved) and any(k.startswith('net.encoder.') for k in moved)
    model.train()
    logits, embed = model(images)
    assert logits.shape[:2] == (4, 11) and embed.shape[:2] == (4, 16) and logits.shape[2:] == embed.shape[2:]
    model.eval()
    expected = model(images)
    assert expected.shape == (4, 11, 64, 64)
    # evaluate's reader rebuilds the model from the checkpoint's own record of encoder, decoder and kwargs
    path = str(tmp_path / 'checkpoint.pth.tar')
    torch.save(dict(state_dict=model.state_dict(), args=dict(encoder=encoder, arch=arch, num_classes=11,
                                                             model_kwargs=kwargs)), path)
    loaded, _ = load_seg_model(path)
    assert not loaded.training and torch.equal(loaded(images), expected)


def test_a_model_without_a_dense_output_is_one_clear_error():
    with pytest.raises(ValueError, match='no dense class convolution'):
        PaCoSegModel(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 11)))
    with pytest.raises(ValueError, match='vit_tiny_patch16_224.*cannot build it.*multi-scale features'):
        create_seg_model('vit_tiny_patch16_224', 11)
    swin = create_seg_model('swin_tiny_patch4_window7_224', 11, 'UPerNet', proj_dim=0, decoder_channels=16)
    with pytest.raises(ValueError, match=r'cannot take 64x64 images.*img_size=64'):
        check_input_size(swin, (64, 64))


def test_task_refuses_labels_that_do_not_fit_the_images():
    model = create_seg_model('resnet18', 11, 'UPerNet', proj_dim=8, decoder_channels=16)
    task = SegmentationTask(model, PixelPaCoLoss(11))
    with pytest.raises(ValueError, match=r'labels must be \[N, H, W\] with N = 2'):
        task(torch.randn(2, 3, 64, 64), torch.zeros(3, 64, 64, dtype=torch.long))
    with pytest.raises(ValueError, match='needs the model\'s projector'):
        SegmentationTask(create_seg_model('resnet18', 11, 'UPerNet', proj_dim=0, decoder_channels=16),
                         PixelPaCoLoss(11))


def test_metrics_against_a_hand_computed_case():
    # classes 0..3; class 3 absent from labels and predictions (IoU None), 255 ignored
    labels = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    preds = torch.tensor([[[0, 1, 1, 1], [2, 0, 3, 0]]])
    metrics = SegMetrics(4, rare=[2])
    metrics.update(preds, labels)
    result = metrics.compute()
    assert metrics.summary() == {k: result[k] for k in ('miou', 'pixel_acc', 'miou_rare')}
    # class 0: tp 1, fp 1 (the 2 predicted 0 at a 2-pixel), fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: 1/2
    assert result['iou'][:3] == pytest.approx([100 / 3, 200 / 3, 50.0])
    assert result['iou'][3] is None
    assert result['miou'] == pytest.approx((100 / 3 + 200 / 3 + 50) / 3)
    assert result['pixel_acc'] == pytest.approx(100 * 4 / 6)
    assert result['miou_rare'] == pytest.approx(50.0) and result['rare_classes'] == [2]
    assert rare_classes([900, 5, 50, 7, 1], k=2) == [1, 4]  # background (0) never counts as rare


def test_train_resume_evaluate(mosaics, tmp_path, capsys):
    data, out = mosaics[0], str(tmp_path)
    code, _, err = _seg(capsys, *_train_flags(data, out, 'full', '--save-epochs', '1'))
    assert code == 0, err[-2000:]
    run = tmp_path / 'full'
    # train.py's loop: loss parts named loss_*, the evaluator's metrics in the summary, --save-epochs' milestone
    header = (run / 'summary.csv').read_text().splitlines()[0].split(',')
    assert {'train_loss', 'train_loss_ce', 'train_loss_pixel_paco', 'eval_miou', 'eval_pixel_acc'} <= set(header)
    assert 'eval_iou' not in header and (run / 'milestone-1.pth.tar').is_file()
    results = json.loads((run / 'results.json').read_text())
    assert results['epoch'] == 1 and results['images'] == TINY.n_test and 0 <= results['miou'] <= 100
    rows = (run / 'results_per_class.csv').read_text().splitlines()
    assert rows[0] == 'class_index,name,train_pixels,iou' and len(rows) == 12
    assert (run / 'results_per_class.png').read_bytes()[:4] == b'\x89PNG'
    # one epoch, then --resume to two: the same weights as two epochs in one go
    assert _seg(capsys, *_train_flags(data, out, 'half', '--epochs', '1'))[0] == 0
    code, _, err = _seg(capsys, *_train_flags(data, out, 'half', '--resume', str(tmp_path / 'half' / 'last.pth.tar')))
    assert code == 0, err[-2000:]
    full = load_checkpoint_file(str(run / 'last.pth.tar'))['state_dict']
    resumed = load_checkpoint_file(str(tmp_path / 'half' / 'last.pth.tar'))['state_dict']
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    # evaluate reads the run's model back from the checkpoint alone and scores it as the trainer did
    code, stdout, err = _seg(capsys, 'evaluate', '--data-dir', data, '--checkpoint', str(run / 'last.pth.tar'),
                             '--results-file', str(tmp_path / 'eval' / 'r.json'), '--predictions',
                             str(tmp_path / 'eval' / 'p.png'), '--num-predictions', '2', '--workers', '0')
    assert code == 0, err[-2000:]
    scored = json.loads((tmp_path / 'eval' / 'r.json').read_text())
    assert scored['miou'] == pytest.approx(results['miou']) and scored['iou'] == pytest.approx(results['iou'])
    assert f'mIoU {results["miou"]:.2f}' in stdout
    for name in ('r_per_class.csv', 'r_per_class.png', 'p.png'):
        assert (tmp_path / 'eval' / name).stat().st_size > 0


def test_bad_input_is_one_line_and_changes_nothing(mosaics, tmp_path, capsys):
    """The CLI's own entry point in this process (``python -m timm_paco.seg`` runs the same ``main``); one case
    as a real process for the exit code and stderr of the command line."""
    from timm_paco.seg.__main__ import main
    data, out = mosaics[0], str(tmp_path)
    cases = [
        (_train_flags(str(tmp_path / 'nowhere'), out, 'a'), 'nowhere: not a folder'),
        (_train_flags(data, out, 'b', '--loss', 'pixel-paco', '--proj-dim', '0'), '--proj-dim > 0'),
        (_train_flags(data, out, 'c', '--num-classes', '5'), '--num-classes 5'),
        (_train_flags(data, out, 'd', '--encoder', 'vit_tiny_patch16_224'), 'multi-scale features'),
        (_train_flags(data, out, 'e', '--encoder', 'swin_tiny_patch4_window7_224'), 'cannot take 64x64 images'),
        (['evaluate', '--data-dir', data, '--checkpoint', str(tmp_path / 'missing.pth.tar'), '--device', 'cpu'],
         'missing.pth.tar'),
    ]
    for argv, message in cases:
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0 and 'Traceback' not in err, (argv, err)
        errors = [line for line in err.splitlines() if ': error: ' in line]  # after any warning on the data
        assert len(errors) == 1 and message in errors[0] and err.strip().splitlines()[-1] == errors[0], err
    assert not any((tmp_path / n).exists() for n in 'abcde')
    # a finished run is not overwritten by a rerun into its folder
    assert _seg(capsys, *_train_flags(data, out, 'kept', '--epochs', '1'))[0] == 0
    before = (tmp_path / 'kept' / 'last.pth.tar').read_bytes()
    code, _, err = _seg(capsys, *_train_flags(data, out, 'kept', '--epochs', '1'))
    assert code != 0 and 'already holds a run' in err and '--resume' in err and 'Traceback' not in err
    assert (tmp_path / 'kept' / 'last.pth.tar').read_bytes() == before


def test_quickstart_tiny(tmp_path, capsys):
    out, docs = tmp_path / 'qs', tmp_path / 'docs'
    # in this process as its __main__ runs it; its train / evaluate stages are processes
    code, stdout, err = run_here(capsys, [sys.executable, '-m', 'timm_paco.seg', 'quickstart', '--tiny', '--threads',
                                          '1', '--output', str(out), '--docs', str(docs)])
    assert code == 0, err[-3000:]
    summary = json.loads((out / 'summary.json').read_text())['summary']
    for loss, name in (('ce', 'CE'), ('pixel-paco', 'CE + pixel PaCo')):
        scored = json.loads((out / f'{loss}-seed0' / 'test_results.json').read_text())
        assert summary[loss]['miou'][0] == pytest.approx(scored['miou'])
        assert any(line.strip().startswith(f'{name} ') and f'mIoU {scored["miou"]:.2f} ± 0.00' in line
                   for line in stdout.splitlines())
    args = (out / 'pixel-paco-seed0' / 'args.yaml').read_text()
    assert 'loss: pixel-paco' in args and 'loss: ce' in (out / 'ce-seed0' / 'args.yaml').read_text()
    table = (docs / 'seg_mosaics.md').read_text()
    row = next(line for line in table.splitlines() if line.startswith('| CE + pixel PaCo |'))
    assert f'{summary["pixel-paco"]["miou"][0]:.2f} ± 0.00' in row
    for name in ('seg_mosaics_predictions.png', 'seg_mosaics_per_class.png'):
        assert (docs / name).read_bytes()[:4] == b'\x89PNG'
    # a rerun reuses both runs
    code, stdout, err = run_here(capsys, [sys.executable, '-m', 'timm_paco.seg', '--quickstart', '--tiny', '--output',
                                          str(out)])
    assert code == 0 and stdout.count('reused') == 2, err[-2000:]


def test_torchrun_two_processes_train_and_score_every_test_image_once(mosaics, tmp_path):
    """2 gloo ranks, each its share of the training batches and of the test images; the synced mIoU equals one
    process scoring the same checkpoint."""
    from timm_paco.seg.evaluate import main as evaluate
    port = __import__('socket').create_server(('127.0.0.1', 0)).getsockname()[1]
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
         '--master_port', str(port), '-m', 'timm_paco.seg', *_train_flags(mosaics[0], str(tmp_path), 'ddp',
                                                                           '--epochs', '1')],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / 'ddp' / 'results.json').read_text())
    assert results['images'] == TINY.n_test
    rows = (tmp_path / 'ddp' / 'summary.csv').read_text().splitlines()
    assert len(rows) == 2  # header + one epoch
    alone = evaluate(['--data-dir', mosaics[0], '--checkpoint', str(tmp_path / 'ddp' / 'last.pth.tar'),
                      '--device', 'cpu', '--workers', '0'])
    assert alone['miou'] == pytest.approx(results['miou']) and alone['iou'] == pytest.approx(results['iou'])


def test_ctrl_c_stops_the_segmentation_trainer_like_train_py(mosaics, tmp_path):
    """SIGINT during `python -m timm_paco.seg train`: exit 130, one line naming the checkpoint to resume from, the
    last complete epoch's checkpoint whole, the folder's lock given back."""
    cmd = [sys.executable, '-m', 'timm_paco.seg', *_train_flags(mosaics[0], str(tmp_path), 'stop', '--epochs', '200')]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    last = tmp_path / 'stop' / 'last.pth.tar'
    start = time.time()
    while not last.exists():
        assert proc.poll() is None and time.time() - start < 240, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    line = err.rstrip().splitlines()[-1]
    assert line.startswith('python -m timm_paco.seg train: interrupted by SIGINT during epoch ') and \
        line.endswith(f'(its updates are not saved); resume with --resume {last}'), err[-2000:]
    epoch = int(line.split('during epoch ')[1].split()[0])
    assert load_checkpoint_file(str(last))['epoch'] == epoch - 1
    assert not (tmp_path / 'stop' / '.run.lock').exists() and 'Traceback' not in err
