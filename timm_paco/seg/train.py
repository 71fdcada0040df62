"""``python -m timm_paco.seg train``: a segmentation model (smp decoder on a timm encoder) trained with CE or CE +
GPaCo's pixel PaCo loss, on one process or under torchrun, through train.py's epoch loop (``cli/train_loop.py``:
reseeding, gradient accumulation, the non-finite guard, progress lines, BatchNorm sync, evaluation with the task's
mIoU evaluator, checkpoints, resume) and train.py's run folder: ``args.yaml``, timm's ``CheckpointSaver``
(``last.pth.tar``), ``summary.csv``, a refusal to overwrite an earlier run without ``--resume`` / ``--overwrite``;
then ``results.json`` (+ per-class CSV / PNG) of the last epoch on ``--val-split``. What is its own: the data, the
model, the loss (``SegmentationTask``) and the evaluator (``SegMetrics``)."""
import logging
import os
from typing import List, Optional, Tuple

import torch
from timm import utils
from timm.optim import create_optimizer_v2, optimizer_kwargs

from timm_paco.cli.inputs import check_device, resolve_device
from timm_paco.cli.interrupts import RunInterrupted, stopped_run
from timm_paco.cli.precision import resolve_precision
from timm_paco.cli.run_settings import settle_resume
from timm_paco.cli.run_lock import release_run_locks
from timm_paco.cli.train_loop import WITHOUT_TIMM_LOADER, TrainRun, run_epochs
from timm_paco.cli.train_output import check_output_folder, create_run_output
from timm_paco.cli.train_schedule import create_schedule
from timm_paco.cli.train_task import resume_run
from timm_paco.losses import PixelPaCoLoss
from timm_paco.seg.args import build_train_parser
from timm_paco.seg.dataset import SegFolder, count_labels, read_class_names
from timm_paco.seg.evaluate import eval_loader, write_results
from timm_paco.seg.metrics import rare_classes
from timm_paco.seg.model import check_input_size, create_seg_model
from timm_paco.seg.task import SegmentationTask

__all__ = ['main']

_logger = logging.getLogger('timm_paco.seg')


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
    vars(args).update(WITHOUT_TIMM_LOADER)
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


def _task(args, train_pixels, device) -> SegmentationTask:
    """The model (smp decoder on the timm encoder), its loss and evaluator, on ``device``."""
    model = create_seg_model(args.encoder, args.num_classes, args.arch, proj_dim=args.proj_dim, **args.model_kwargs)
    criterion = None
    if args.loss == 'pixel-paco':
        criterion = PixelPaCoLoss(args.num_classes, alpha=args.paco_alpha, beta=args.paco_beta,
                                  gamma=args.paco_gamma, temperature=args.paco_temperature,
                                  num_pixels=args.paco_pixels or None, ignore_index=args.ignore_index)
    rare = rare_classes(train_pixels) if train_pixels else None
    return SegmentationTask(model, criterion, args.paco_weight, args.ignore_index, rare).to(device)


def _build(args) -> Tuple[TrainRun, List[str], Optional[List[int]], Optional[SegFolder]]:
    """Classes → process → task → data → optimiser → schedule → output: the run the epoch loop reads, the class
    names, the training pixels per class and the validation images."""
    names, train_pixels = _resolve(args)
    args.device = resolve_device(args.device)
    check_device(args.device)
    settle_resume(args)
    check_output_folder(args)
    device = utils.init_distributed_device(args)
    precision = resolve_precision(None, args.amp, args.amp_dtype)
    utils.random_seed(args.seed, args.rank)
    task = _task(args, train_pixels, device)
    train_set = SegFolder(args.data_dir, args.train_split, train=True)
    image_size = train_set.read(0)[1].shape
    check_input_size(task.get_trainable_module(), image_size, f'--encoder {args.encoder} --arch {args.arch}')
    val_set = SegFolder(args.data_dir, args.val_split) if args.val_split else None
    loader_eval = eval_loader(val_set, args.batch_size, args.workers, args.rank, args.world_size) if val_set else None
    optimizer = create_optimizer_v2(task.get_trainable_module(), **optimizer_kwargs(cfg=args),
                                    filter_bias_and_bn=not args.wd_bias_and_norm)
    loss_scaler = precision.loss_scaler(device)
    resume_epoch = resume_run(task, args, optimizer, loss_scaler) if args.resume else None
    if args.distributed:
        task.prepare_distributed(device_ids=[device] if device.type == 'cuda' else None)
    loader = _train_loader(args, train_set)
    eval_metric = 'miou' if val_set is not None else 'loss'
    scheduler, num_epochs, start_epoch = create_schedule(args, optimizer, loader, eval_metric == 'loss', resume_epoch)
    output = create_run_output(args, task, optimizer, loss_scaler, {'input_size': (3,) + tuple(image_size)}, None,
                               decreasing=eval_metric == 'loss', start_epoch=start_epoch)
    run = TrainRun(args=args, task=task, optimizer=optimizer, device=device, loader_train=loader,
                   loader_eval=loader_eval, amp_autocast=precision.autocast(device), loss_scaler=loss_scaler,
                   lr_scheduler=scheduler, batch_size_reference=float(args.batch_size), eval_metric=eval_metric,
                   output=output, start_epoch=start_epoch, num_epochs=num_epochs)
    return run, names, train_pixels, val_set


def main(argv=None):
    utils.setup_default_logging()
    args = build_train_parser().parse_args(argv)
    try:
        return _train(args)
    finally:
        release_run_locks()  # the --experiment folder's lock (also released at exit)


def _train(args):
    run, names, train_pixels, val_set = _build(args)
    try:
        records = run_epochs(run)
    except RunInterrupted as e:  # Ctrl-C / SIGTERM: one line saying where to resume, exit 130 / 143
        raise stopped_run(e, e.epoch, run.output.output_dir) from None
    results = records[-1].get('validation') if records else None
    if results is not None and run.output.output_dir is not None:
        results.update(epoch=run.num_epochs - 1, split=args.val_split, images=len(val_set))
        write_results(results, os.path.join(run.output.output_dir, 'results.json'), names, train_pixels,
                      title=args.experiment or args.model)
    if args.distributed:
        torch.distributed.destroy_process_group()
    return results
