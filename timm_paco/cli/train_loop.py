"""The epoch loop of train.py and of the segmentation trainer (``python -m timm_paco.seg train``): reseed, train an
epoch, BatchNorm sync across ranks, evaluate (model and EMA) every ``--val-interval`` epochs with the task's own
evaluator (``task.create_evaluator``: top-1 for classification, mIoU for segmentation), log the summary row, save
and rank the checkpoint, step the schedule.

Each epoch reseeds the global RNGs from ``(--seed, epoch, rank)``, so ``--resume`` of an epoch checkpoint
continues exactly as the uninterrupted run (bit-exact on CPU with ``--workers 0``).
"""
import logging
import time
from typing import Dict, List, Optional

import torch
from timm import utils
from timm.task import evaluation_sample_limit

from timm_paco.cli.interrupts import RunInterrupted, deferred_interrupts
from timm_paco.cli.train_epoch import train_one_epoch
from timm_paco.cli.train_run import TrainRun

__all__ = ['EPOCH_SEED_STRIDE', 'WITHOUT_TIMM_LOADER', 'reseed', 'validate', 'run_epochs']

_logger = logging.getLogger('train')

EPOCH_SEED_STRIDE = 10007  # per-epoch reseed: seed + stride * epoch (+ rank)

# the loop's settings that come from train.py's timm loader, memory-format, logging and EMA flags, as a trainer that
# has none of them (a plain DataLoader, no mixup, no EMA: the segmentation trainer) runs it
WITHOUT_TIMM_LOADER = dict(prefetcher=False, channels_last=False, mixup_off_epoch=0, train_img_sizes=None,
                           variable_batch_loss_scale='none', save_images=False, log_wandb=False,
                           model_ema_force_cpu=False)
_EVAL_LABELS = dict(loss='Loss', top1='Acc@1', top5='Acc@5')  # progress-line names of the evaluators' metrics


def reseed(args, epoch: int) -> None:
    """Global RNGs as a function of (seed, epoch, rank): augmentation and shuffling restart exactly on resume
    (the loaders' workers are not persistent, so they take their seeds from these RNGs every epoch)."""
    utils.random_seed(args.seed + EPOCH_SEED_STRIDE * epoch, args.rank)


def _set_loader_epoch(loader, epoch: int) -> None:
    """The epoch to the dataset and to the loader's sampler (a batch sampler passes it on to its own)."""
    if hasattr(loader.dataset, 'set_epoch'):
        loader.dataset.set_epoch(epoch)
    for obj in (getattr(loader, 'batch_sampler', None), getattr(loader, 'sampler', None)):
        if hasattr(obj, 'set_epoch'):
            obj.set_epoch(epoch)
            return


def _log_eval(args, batch_idx: int, last_idx: int, batch_time, running: Dict, ema: bool) -> None:
    metrics = '  '.join(f'{_EVAL_LABELS.get(k, k)}: {v:>7.3f}' for k, v in running.items() if v is not None)
    _logger.info(f'Test{" (EMA)" if ema else ""}: [{batch_idx:>4d}/{last_idx}]  '
                 f'Time: {batch_time.val:.3f} ({batch_time.avg:.3f})  {metrics}')


def validate(run: TrainRun, ema: bool = False) -> Dict[str, float]:
    """The (EMA) eval model's metrics over the validation loader, from the task's evaluator (timm's API:
    ``update(output, target)``, ``summary()``, ``compute(distributed)``)."""
    args, loader = run.args, run.loader_eval
    model = run.task.get_eval_model(ema=ema)
    model.eval()
    evaluator = run.task.create_evaluator(max_samples=evaluation_sample_limit(loader))
    batch_time = utils.AverageMeter()
    last_idx = len(loader) - 1
    end = time.time()
    with torch.inference_mode():
        for batch_idx, (input, target) in enumerate(loader):
            if not args.prefetcher:
                input, target = input.to(device=run.device, dtype=run.model_dtype), target.to(device=run.device)
            if args.channels_last:
                input = input.contiguous(memory_format=torch.channels_last)
            with run.amp_autocast():
                output = model(input)
            if isinstance(output, (tuple, list)):
                output = output[0]
            evaluator.update(output, target)
            batch_time.update(time.time() - end)
            end = time.time()
            if utils.is_primary(args) and (batch_idx == last_idx or batch_idx % args.log_interval == 0):
                _log_eval(args, batch_idx, last_idx, batch_time, evaluator.summary(), ema)
    return evaluator.compute(distributed=args.distributed)


def _distribute_bn(run: TrainRun, ema: bool = False) -> None:
    """``--dist-bn broadcast / reduce``: BatchNorm statistics made equal across the ranks."""
    args = run.args
    if args.distributed and args.dist_bn in ('broadcast', 'reduce'):
        utils.distribute_bn(run.task.get_trainable_module(ema=ema), args.world_size, args.dist_bn == 'reduce')


def _evaluate(run: TrainRun) -> Optional[Dict[str, float]]:
    """The epoch's validation metrics (the EMA's when it is kept on the device), None without a loader."""
    if run.loader_eval is None:
        return None
    metrics = validate(run)
    if run.task.has_ema() and not run.args.model_ema_force_cpu:
        _distribute_bn(run, ema=True)
        metrics = validate(run, ema=True)
    return metrics


def _end_of_epoch(run: TrainRun, epoch: int, train_metrics: Dict, eval_metrics: Optional[Dict]) -> None:
    """Checkpoint (ranked by ``run.eval_metric``), summary row and schedule step of an evaluated epoch; a stop
    signal waits until the checkpoint and the row are both written."""
    latest_metric = (eval_metrics or train_metrics)[run.eval_metric]
    if run.output.saver is not None:
        run.check_savable(f'the end of epoch {epoch}')
    if run.output.saver is not None:
        with deferred_interrupts():
            row = None if eval_metrics is None else {  # per-class lists stay out of summary.csv
                k: v for k, v in eval_metrics.items() if v is None or isinstance(v, (int, float))}
            run.best = run.output.record_epoch(epoch, latest_metric, train_metrics, row, lr=run.mean_lr(),
                                               log_wandb=run.output.log_wandb)
            if epoch + 1 in (run.args.save_epochs or ()):  # a milestone: a hard link of last.pth.tar, never pruned
                run.output.saver.save_milestone(epoch + 1)
    if run.lr_scheduler is not None:
        run.lr_scheduler.step(epoch + 1, latest_metric)


def run_epochs(run: TrainRun) -> List[Dict]:
    """Epochs ``run.start_epoch .. run.num_epochs - 1``; returns one ``{'epoch', 'train' [, 'validation']}`` record
    per evaluated epoch. A stop signal (``interrupts``) abandons the epoch in progress: ``RunInterrupted`` carries
    its number."""
    args = run.args
    results = []
    num_epochs = run.num_epochs
    epoch = run.start_epoch
    try:
        for epoch in range(run.start_epoch, num_epochs):
            reseed(args, epoch)
            if hasattr(run.task, 'set_epoch'):  # an epoch-scheduled loss (ldam-drw's deferred re-weighting)
                run.task.set_epoch(epoch)
            _set_loader_epoch(run.loader_train, epoch)
            train_metrics = train_one_epoch(run, epoch)
            _distribute_bn(run)
            if (epoch + 1) % args.val_interval != 0 and epoch + 1 != num_epochs and \
                    epoch + 1 not in (args.save_epochs or ()):  # the last epoch and milestones are evaluated
                if run.lr_scheduler is not None:
                    run.lr_scheduler.step(epoch + 1, metric=None)
                continue
            eval_metrics = _evaluate(run)
            _end_of_epoch(run, epoch, train_metrics, eval_metrics)
            results.append({'epoch': epoch, 'train': train_metrics,
                            **({'validation': eval_metrics} if eval_metrics else {})})
    except RunInterrupted as e:
        e.epoch = epoch  # the epoch it arrived in (stopped_run tells the one abandoned)
        raise
    return results
