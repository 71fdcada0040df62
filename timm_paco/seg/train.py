"""``python -m timm_paco.seg train``: a segmentation model (smp decoder on a timm encoder) trained with CE or CE +
GPaCo's pixel PaCo loss, on one process or under torchrun, with train.py's run folder: ``args.yaml``, timm's
``CheckpointSaver`` (``last.pth.tar``; a finite check before every save), ``summary.csv``, a refusal to
overwrite an earlier run without ``--resume`` / ``--overwrite``, and ``results.json`` (+ per-class CSV / PNG) of
the last epoch on ``--val-split``."""
import logging
import os
import time
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from timm import utils
from timm.optim import create_optimizer_v2, optimizer_kwargs

from timm_paco.cli.inputs import check_device, resolve_device
from timm_paco.cli.precision import Precision, resolve_precision
from timm_paco.cli.train_loop import reseed
from timm_paco.cli.interrupts import RunInterrupted, deferred_interrupts, stopped_run
from timm_paco.cli.run_checkpoints import resolve_resume
from timm_paco.cli.run_lock import release_run_locks
from timm_paco.cli.train_output import check_output_folder, create_run_output
from timm_paco.cli.train_schedule import create_schedule
from timm_paco.cli.train_task import resume_run
from timm_paco.finite import NonFiniteError, check_finite_state
from timm_paco.losses import PixelPaCoLoss
from timm_paco.seg.args import build_train_parser
from timm_paco.seg.dataset import SegFolder, count_labels, read_class_names
from timm_paco.seg.evaluate import eval_loader, evaluate, write_results
from timm_paco.seg.metrics import rare_classes
from timm_paco.seg.model import check_input_size, create_seg_model
from timm_paco.seg.task import SegmentationTask

__all__ = ['main']

_logger = logging.getLogger('timm_paco.seg')


@dataclass
class SegRun:
    args: object
    device: torch.device
    precision: Precision
    task: SegmentationTask
    optimizer: torch.optim.Optimizer
    loader: torch.utils.data.DataLoader
    val_dataset: Optional[SegFolder]
    names: list
    train_pixels: Optional[list]
    output: object = None
    scheduler: object = None
    loss_scaler: object = None
    start_epoch: int = 0
    num_epochs: int = 0


def _resolve(args):
    """Defaults that depend on other flags, and their checks (before anything is written)."""
    args.encoder = args.encoder or 'resnet18'
    args.arch = args.arch or 'UPerNet'
    if args.proj_dim is None:
        args.proj_dim = 128 if args.loss == 'pixel-paco' else 0
    if args.loss == 'pixel-paco' and args.proj_dim == 0:
        raise ValueError('--loss pixel-paco needs a projector: --proj-dim > 0 (default 128)')
    if not os.path.isdir(args.data_dir):
        raise ValueError(f'--data-dir {args.data_dir}: not a folder (python -m timm_paco.seg mosaics writes one)')
    names = read_class_names(args.data_dir)
    args.num_classes = args.num_classes or (len(names) if names else None)
    if args.num_classes is None:
        raise ValueError(f'--num-classes: not given and {args.data_dir} has no classes.json / mosaics.json')
    if names is not None and len(names) != args.num_classes:
        raise ValueError(f'--num-classes {args.num_classes}: {args.data_dir} names {len(names)} classes')
    args.model = f'{args.arch}-{args.encoder}'  # the run's name in checkpoints and the default --experiment
    args.grad_accum_steps, args.log_wandb, args.eval_metric = 1, False, 'miou'
    names = names or [str(c) for c in range(args.num_classes)]
    return names, _check_labels(args, names)


def _check_labels(args, names) -> list:
    """The training split's labelled pixels per class, after checking every label map of the training and
    validation splits against the classes and ``--ignore-index`` (a warning names classes without pixels)."""
    if args.ignore_index < args.num_classes:
        raise ValueError(f'--ignore-index {args.ignore_index}: that is class {names[args.ignore_index]!r} of '
                         f'--num-classes {args.num_classes}, which would leave it out of the loss and the mIoU; the '
                         f'unlabelled value must be {args.num_classes} or more (default 255)')
    pixels = count_labels(args.data_dir, args.train_split, args.num_classes, args.ignore_index)
    if args.val_split:
        count_labels(args.data_dir, args.val_split, args.num_classes, args.ignore_index)
    empty = [f'{c} ({names[c]})' for c, n in enumerate(pixels) if n == 0]
    if empty and int(os.environ.get('RANK', '0')) == 0:  # before the process group exists
        _logger.warning(f'Classes {", ".join(empty)} of {args.num_classes} have no training pixels in '
                        f'{args.train_split}: the model cannot learn them')
    return pixels


def _train_loader(args, dataset):
    sampler = (torch.utils.data.distributed.DistributedSampler(dataset, seed=args.seed, drop_last=True)
               if args.distributed else None)
    if len(dataset) < args.batch_size * args.world_size:
        raise ValueError(f'-b {args.batch_size}: the {args.train_split} split has {len(dataset)} images, fewer '
                         f'than one batch per process')
    return torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None,
                                       sampler=sampler, num_workers=args.workers, drop_last=True)


def _build(args) -> SegRun:
    names, train_pixels = _resolve(args)
    args.device = resolve_device(args.device)
    check_device(args.device)
    resolve_resume(args)
    check_output_folder(args)
    device = utils.init_distributed_device(args)
    precision = resolve_precision(None, args.amp, args.amp_dtype)
    utils.random_seed(args.seed, args.rank)
    model = create_seg_model(args.encoder, args.num_classes, args.arch, proj_dim=args.proj_dim,
                             **args.model_kwargs)
    criterion = None
    if args.loss == 'pixel-paco':
        criterion = PixelPaCoLoss(args.num_classes, alpha=args.paco_alpha, beta=args.paco_beta,
                                  gamma=args.paco_gamma, temperature=args.paco_temperature,
                                  num_pixels=args.paco_pixels or None, ignore_index=args.ignore_index)
    task = SegmentationTask(model, criterion, args.paco_weight, args.ignore_index).to(device)
    train_set = SegFolder(args.data_dir, args.train_split, train=True)
    image_size = train_set.read(0)[1].shape
    check_input_size(model, image_size, f'--encoder {args.encoder} --arch {args.arch}')
    val_set = SegFolder(args.data_dir, args.val_split) if args.val_split else None
    run = SegRun(args, device, precision, task, None, _train_loader(args, train_set), val_set, names, train_pixels)
    run.optimizer = create_optimizer_v2(task.get_trainable_module(), **optimizer_kwargs(cfg=args),
                                        filter_bias_and_bn=not args.wd_bias_and_norm)
    run.loss_scaler = precision.loss_scaler(device)
    resume_epoch = None
    if args.resume:
        resume_epoch = resume_run(task, args, run.optimizer, run.loss_scaler)
    if args.distributed:
        task.prepare_distributed(device_ids=[device] if device.type == 'cuda' else None)
    run.scheduler, run.num_epochs, run.start_epoch = create_schedule(args, run.optimizer, run.loader, False,
                                                                     resume_epoch)
    run.output = create_run_output(args, task, run.optimizer, run.loss_scaler,
                                   {'input_size': (3,) + tuple(image_size)}, None, decreasing=False,
                                   start_epoch=run.start_epoch)
    return run


def _step(run: SegRun, images, labels) -> Dict[str, float]:
    with run.precision.autocast(run.device)():
        out = run.task(images, labels)
    loss = out['loss']
    if not torch.isfinite(loss):
        raise NonFiniteError(f'the loss is {float(loss)} (ce {float(out["ce"])}); nothing was saved for this '
                             f'step: lower --lr or use --amp-dtype bfloat16')
    run.optimizer.zero_grad(set_to_none=True)
    if run.loss_scaler is not None:
        run.loss_scaler(loss, run.optimizer, parameters=run.task.get_trainable_module().parameters())
    else:
        loss.backward()
        run.optimizer.step()
    return {k: float(v.detach()) for k, v in out.items() if k != 'output'}


def train_one_epoch(run: SegRun, epoch: int) -> Dict[str, float]:
    args, sums, start = run.args, {}, time.time()
    run.task.train()
    if args.distributed:
        run.loader.sampler.set_epoch(epoch)
    updates = len(run.loader)
    for i, (images, labels) in enumerate(run.loader):
        parts = _step(run, images.to(run.device), labels.to(run.device))
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        if run.scheduler is not None:
            run.scheduler.step_update(num_updates=epoch * updates + i + 1)
        if utils.is_primary(args) and ((i + 1) % args.log_interval == 0 or i + 1 == updates):
            _logger.info(f'Train: {epoch} [{i + 1}/{updates}] ' + ' '.join(
                f'{k} {v / (i + 1):.4f}' for k, v in sums.items()) + f' lr {run.optimizer.param_groups[0]["lr"]:.3g}'
                f' ({time.time() - start:.1f}s)')
    return {k: v / max(updates, 1) for k, v in sums.items()}


def _evaluate(run: SegRun) -> Optional[Dict]:
    if run.val_dataset is None:
        return None
    args = run.args
    loader = eval_loader(run.val_dataset, args.batch_size, args.workers, args.rank, args.world_size)
    rare = rare_classes(run.train_pixels) if run.train_pixels else None
    return evaluate(run.task.get_eval_model(), loader, run.device, args.num_classes, args.ignore_index,
                    run.precision.amp_dtype, rare)


def _end_of_epoch(run: SegRun, epoch: int, train: Dict, results: Optional[Dict]):
    if run.output.output_dir is not None:
        row = {k: v for k, v in (results or {}).items() if k in ('miou', 'pixel_acc', 'miou_rare')}
        check_finite_state(run.task.get_eval_model().state_dict(), f'the model at the end of epoch {epoch}')
        with deferred_interrupts():  # the checkpoint and the summary row are written together or not at all
            run.output.record_epoch(epoch, (results or {}).get('miou', -train['loss']), train, row, log_wandb=False)
    if run.scheduler is not None:
        run.scheduler.step(epoch + 1, (results or {}).get('miou'))


def _report(run: SegRun, epoch: int, results: Dict):
    rare = '' if results.get('miou_rare') is None else f', rare classes {results["miou_rare"]:.2f}'
    _logger.info(f'Eval {run.args.val_split} after epoch {epoch}: mIoU {results["miou"]:.2f}{rare}, pixel accuracy '
                 f'{results["pixel_acc"]:.2f}')


def main(argv=None):
    utils.setup_default_logging()
    args = build_train_parser().parse_args(argv)
    try:
        return _train(args)
    finally:
        release_run_locks()  # the --experiment folder's lock (also released at exit)


def _train(args):
    run = _build(args)
    results = None
    epoch = run.start_epoch
    try:
        for epoch in range(run.start_epoch, run.num_epochs):
            reseed(args, epoch)
            train = train_one_epoch(run, epoch)
            if args.distributed and args.dist_bn:  # every rank evaluates and rank 0 saves the same statistics
                utils.distribute_bn(run.task.get_trainable_module(), args.world_size, args.dist_bn == 'reduce')
            last = epoch + 1 == run.num_epochs
            results = _evaluate(run) if last or (epoch + 1) % args.val_interval == 0 else None
            if results is not None and utils.is_primary(args):
                _report(run, epoch, results)
            _end_of_epoch(run, epoch, train, results)
    except RunInterrupted as e:  # Ctrl-C / SIGTERM: one line saying where to resume, exit 130 / 143
        raise stopped_run(e, epoch, run.output.output_dir) from None
    if results is not None and run.output.output_dir is not None:
        results.update(epoch=run.num_epochs - 1, split=args.val_split, images=len(run.val_dataset))
        write_results(results, os.path.join(run.output.output_dir, 'results.json'), run.names, run.train_pixels,
                      title=args.experiment or args.model)
    if args.distributed:
        torch.distributed.destroy_process_group()
    return results

