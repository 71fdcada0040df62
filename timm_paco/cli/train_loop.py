"""The training loop of train.py and of the segmentation trainer (``python -m timm_paco.seg train``), in one place:

* ``TrainRun``: everything the loop reads (task, optimiser, loaders, precision, schedule, output), built once by
  the trainer's build function;
* ``train_one_epoch``: one epoch of task steps as timm's train.py runs them: gradient accumulation, AMP loss
  scaling, gradient clipping, DDP ``no_sync`` between updates, the non-finite guard, EMA updates, per-update
  schedules, progress lines of the task's ``loss_*`` parts and recovery checkpoints;
* ``run_epochs``: per epoch reseed, train, BatchNorm sync across ranks, evaluate (model and EMA) every
  ``--val-interval`` epochs with the task's own evaluator (``task.create_evaluator``: top-1 for classification,
  mIoU for segmentation), save and rank the checkpoint with its summary row, step the schedule.

Batches are view-major: ``input [V·B, C, H, W]``, ``target [B]``; ``task(input, target)`` returns ``{'loss',
'loss_<part>', …}``. Each epoch reseeds the global RNGs from ``(--seed, epoch, rank)``, so ``--resume`` of an epoch
checkpoint continues exactly as the uninterrupted run (bit-exact on CPU with ``--workers 0``).
"""
import logging
import os
import time
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torchvision.utils
from timm import utils
from timm.task import evaluation_sample_limit

from timm_paco.cli.interrupts import RunInterrupted, deferred_interrupts
from timm_paco.cli.train_output import RunOutput
from timm_paco.cli.train_schedule import updates_per_epoch
from timm_paco.finite import NonFiniteError, check_finite_state, grads_finite

__all__ = ['EPOCH_SEED_STRIDE', 'WITHOUT_TIMM_LOADER', 'TrainRun', 'reseed', 'train_one_epoch', 'validate',
           'run_epochs']

_logger = logging.getLogger('train')

EPOCH_SEED_STRIDE = 10007  # per-epoch reseed: seed + stride * epoch (+ rank)

# the loop's settings that come from train.py's timm loader, memory-format, logging and EMA flags, as a trainer that
# has none of them (a plain DataLoader, no mixup, no EMA: the segmentation trainer) runs it
WITHOUT_TIMM_LOADER = dict(prefetcher=False, channels_last=False, mixup_off_epoch=0, train_img_sizes=None,
                           variable_batch_loss_scale='none', save_images=False, log_wandb=False,
                           model_ema_force_cpu=False)
_EVAL_LABELS = dict(loss='Loss', top1='Acc@1', top5='Acc@5')  # progress-line names of the evaluators' metrics


@dataclass
class TrainRun:
    """``args``: train.py's namespace; ``amp_autocast``: a factory of the forward's autocast context;
    ``loss_scaler``: timm's ``NativeScaler`` (float16 AMP on CUDA) or None; ``batch_size_reference``: the batch
    size the loss scale of ``--train-img-sizes`` batches is relative to; ``eval_metric``: what ranks checkpoints
    and feeds plateau schedules (``loss`` without a validation loader); ``start_epoch`` .. ``num_epochs - 1``:
    the epochs to run; ``best``: the saver's best (metric, epoch)."""
    args: Any
    task: Any
    optimizer: torch.optim.Optimizer
    device: torch.device
    loader_train: Any
    loader_eval: Any = None
    amp_autocast: Callable = suppress
    loss_scaler: Any = None
    model_dtype: Optional[torch.dtype] = None
    mixup_fn: Optional[Callable] = None
    lr_scheduler: Any = None
    batch_size_reference: float = 1.0
    eval_metric: str = 'loss'
    output: RunOutput = field(default_factory=RunOutput)
    start_epoch: int = 0
    num_epochs: int = 0
    best: Tuple[Optional[float], Optional[int]] = (None, None)  # (metric, epoch) of the best checkpoint so far

    @property
    def distributed(self) -> bool:
        return bool(self.args.distributed)

    def mean_lr(self) -> float:
        lrs = [group['lr'] for group in self.optimizer.param_groups]
        return sum(lrs) / len(lrs)

    def check_savable(self, when: str) -> None:
        """NonFiniteError when the trainable module or the task state (key encoder, queue) is not finite: a
        finite loss can still overflow the weights in its update; such a model is never saved."""
        check_finite_state(self.task.get_trainable_module().state_dict(), f'the model at {when}')
        check_finite_state(self.task.get_task_state(), f'the task state at {when}')


@dataclass
class _Meters:
    """Running averages of the loss parts (per sample), update and data times, and the samples of the current
    update (all ranks)."""
    losses: Dict[str, utils.AverageMeter] = field(default_factory=lambda: OrderedDict(loss=utils.AverageMeter()))
    update_time: utils.AverageMeter = field(default_factory=utils.AverageMeter)
    data_time: utils.AverageMeter = field(default_factory=utils.AverageMeter)
    samples: int = 0

    def add(self, result: Dict[str, torch.Tensor], batch_size: int) -> None:
        for name, value in result.items():
            if name == 'loss' or name.startswith('loss_'):
                self.losses.setdefault(name, utils.AverageMeter()).update(value.item(), batch_size)


def _stop_mixup(run: TrainRun, epoch: int) -> None:
    """``--mixup-off-epoch``: no more mixing from that epoch on."""
    args = run.args
    if not args.mixup_off_epoch or epoch < args.mixup_off_epoch:
        return
    if args.prefetcher and getattr(run.loader_train, 'mixup_enabled', False):
        run.loader_train.mixup_enabled = False
    elif run.mixup_fn is not None:
        run.mixup_fn.mixup_enabled = False


def _device_batch(run: TrainRun, input, target):
    """The batch on the device in the model's dtype (the prefetcher has done so already), mixed, channels_last."""
    if not run.args.prefetcher:
        input, target = input.to(device=run.device, dtype=run.model_dtype), target.to(device=run.device)
        if run.mixup_fn is not None:
            input, target = run.mixup_fn(input, target)
    if run.args.channels_last:
        input = input.contiguous(memory_format=torch.channels_last)
    return input, target


def _loss_scale(run: TrainRun, accum_steps: int, batch_size: int) -> float:
    """1 / the batches of this update, times ``--variable-batch-loss-scale`` of a ``--train-img-sizes`` batch."""
    args = run.args
    scale = 1.0 / accum_steps
    if args.train_img_sizes is not None and args.variable_batch_loss_scale != 'none':
        ratio = batch_size / run.batch_size_reference
        scale *= ratio ** 0.5 if args.variable_batch_loss_scale == 'sqrt' else ratio
    return scale


def _all_ranks_finite(run: TrainRun, finite: bool) -> bool:
    """``finite`` on every rank (all ranks skip a step together, or none does)."""
    if not run.distributed:
        return finite
    flag = torch.tensor([0. if finite else 1.], device=run.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return not bool(flag.item())


def _forward_backward(run: TrainRun, input, target, loss_scale: float, need_update: bool,
                      clip_parameters: Optional[List]):
    """The task's forward under autocast, the scaled backward, and on ``need_update`` the (clipped) optimiser
    step; DDP's gradient sync only on the update's last batch. Returns (the task's result, None or what was
    not finite: ``'loss'`` before the backward, ``'gradient'`` before the step, which then is not taken).
    fp16's grad scaler skips its own overflowing steps."""
    args, optimizer = run.args, run.optimizer
    second_order = getattr(optimizer, 'is_second_order', False)
    with run.task.no_sync() if run.distributed and not need_update else suppress():
        with run.amp_autocast():
            result = run.task(input, target)
        if not _all_ranks_finite(run, bool(torch.isfinite(result['loss']))):
            return result, 'loss'
        loss = result['loss'] * loss_scale
        if run.loss_scaler is not None:
            run.loss_scaler(loss, optimizer, clip_grad=args.clip_grad, clip_mode=args.clip_mode,
                            parameters=clip_parameters, create_graph=second_order, need_update=need_update)
            return result, None
        loss.backward(create_graph=second_order)
        if need_update:
            if not _all_ranks_finite(run, grads_finite(run.task.get_trainable_module().parameters())):
                return result, 'gradient'
            if args.clip_grad is not None:
                utils.dispatch_clip_grad(clip_parameters, value=args.clip_grad, mode=args.clip_mode)
            optimizer.step()
    return result, None


def _skip_non_finite(run: TrainRun, epoch: int, batch_idx: int, what: str, skipped: int) -> int:
    """Drop the update's gradients after a non-finite ``what``; returns the updates skipped so far. Raises
    NonFiniteError once more than ``--max-nonfinite-steps`` were."""
    run.optimizer.zero_grad()
    skipped += 1
    where = f'epoch {epoch}, update {batch_idx // run.args.grad_accum_steps} (batch {batch_idx})'
    if skipped > run.args.max_nonfinite_steps:
        raise NonFiniteError(f'non-finite {what} (NaN or inf) at {where}: training diverged')
    _logger.warning(f'Non-finite {what} at {where}: update skipped ({skipped} of at most '
                    f'{run.args.max_nonfinite_steps}).')
    return skipped


def _log_progress(run: TrainRun, epoch: int, update_idx: int, meters: _Meters, loss: torch.Tensor) -> None:
    """One progress line: loss (this update and the epoch's mean, over ranks), parts, speed, lr, data time."""
    args = run.args
    loss_now, loss_avg = meters.losses['loss'].val, meters.losses['loss'].avg
    if run.distributed:
        loss_now = utils.reduce_tensor(loss.new([loss_now]), args.world_size).item()
        loss_avg = utils.reduce_tensor(loss.new([loss_avg]), args.world_size).item()
    if not utils.is_primary(args):
        return
    updates = updates_per_epoch(args, run.loader_train)
    parts = ''.join(f'  {k[5:].capitalize()}: {m.val:#.3g}' for k, m in meters.losses.items() if k != 'loss')
    t = meters.update_time
    _logger.info(
        f'Train: {epoch} [{update_idx:>4d}/{updates} ({100. * (update_idx + 1) / updates:>3.0f}%)]  '
        f'Loss: {loss_now:#.3g} ({loss_avg:#.3g}){parts}  '
        f'Time: {t.val:.3f}s, {meters.samples / t.val:>7.2f}/s  ({t.avg:.3f}s, {meters.samples / t.avg:>7.2f}/s)  '
        f'LR: {run.mean_lr():.3e}  Data: {meters.data_time.val:.3f} ({meters.data_time.avg:.3f})')


def _epoch_metrics(run: TrainRun, meters: _Meters) -> Dict[str, float]:
    """The epoch's mean of each loss part, averaged over the ranks."""
    metrics = OrderedDict()
    for name, meter in meters.losses.items():
        value = meter.avg
        if run.distributed:
            value = torch.tensor([value], device=run.device, dtype=torch.float64)
            value = utils.reduce_tensor(value, run.args.world_size).item()
        metrics[name] = value
    return metrics


def _finish_update(run: TrainRun, num_updates: int) -> None:
    """After an optimiser step: gradients cleared, the EMA updated, the device synchronised
    (``--synchronize-step``) before the update is timed."""
    run.optimizer.zero_grad()
    run.task.update_ema(step=num_updates)
    if run.args.synchronize_step and run.device.type == 'cuda':
        torch.cuda.synchronize()


def _after_update(run: TrainRun, epoch: int, batch_idx: int, num_updates: int, meters: _Meters, loss,
                  input, log: bool) -> None:
    """After a timed update: the progress line (and ``--save-images``), a recovery checkpoint every
    ``--recovery-interval`` updates, the per-update schedule."""
    args = run.args
    update_idx = batch_idx // args.grad_accum_steps
    if log:
        _log_progress(run, epoch, update_idx, meters, loss)
        if args.save_images and run.output.output_dir and utils.is_primary(args):
            path = os.path.join(run.output.output_dir, f'train-batch-{batch_idx}.jpg')
            torchvision.utils.save_image(getattr(input, 'views', input), path, padding=0, normalize=True)
    if run.output.saver is not None and args.recovery_interval and (update_idx + 1) % args.recovery_interval == 0:
        run.check_savable(f'epoch {epoch}, update {update_idx}')
        run.output.saver.save_recovery(epoch, batch_idx=update_idx)
    if run.lr_scheduler is not None:
        run.lr_scheduler.step_update(num_updates=num_updates, metric=meters.losses['loss'].avg)


def train_one_epoch(run: TrainRun, epoch: int) -> Dict[str, float]:
    """One epoch of task steps; returns ``{'loss', <named loss parts>}`` averaged over the epoch (and ranks)."""
    args = run.args
    _stop_mixup(run, epoch)
    run.task.get_trainable_module().train()
    num_batches, accum = len(run.loader_train), args.grad_accum_steps
    last_group_start = num_batches - num_batches % accum
    num_updates = epoch * updates_per_epoch(args, run.loader_train)
    clip_parameters = None
    if args.clip_grad is not None:
        clip_parameters = list(run.task.get_clip_parameters(exclude_head='agc' in args.clip_mode))
    meters = _Meters()
    skipped = 0
    run.optimizer.zero_grad()
    data_start = update_start = time.time()
    for batch_idx, (input, target) in enumerate(run.loader_train):
        last_batch = batch_idx == num_batches - 1
        need_update = last_batch or (batch_idx + 1) % accum == 0
        accum_steps = num_batches % accum if batch_idx >= last_group_start else accum
        input, target = _device_batch(run, input, target)
        meters.data_time.update(accum_steps * (time.time() - data_start))
        result, non_finite = _forward_backward(
            run, input, target, _loss_scale(run, accum_steps, target.shape[0]), need_update, clip_parameters)
        if non_finite:
            skipped = _skip_non_finite(run, epoch, batch_idx, non_finite, skipped)
            data_start = time.time()
            continue
        meters.add(result, target.shape[0])
        meters.samples += target.shape[0] * args.world_size
        if need_update:
            num_updates += 1
            _finish_update(run, num_updates)
            now = time.time()
            meters.update_time.update(now - update_start)
            update_start = now
            log = (batch_idx // accum) % args.log_interval == 0 or last_batch
            _after_update(run, epoch, batch_idx, num_updates, meters, result['loss'], input, log)
            meters.samples = 0
        data_start = time.time()
    if hasattr(run.optimizer, 'sync_lookahead'):
        run.optimizer.sync_lookahead()
    return _epoch_metrics(run, meters)


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
