"""train.py's schedule: timm's scheduler and the epoch a run starts from (``--start-epoch``, else the resumed
epoch); ``--lr`` itself is settled in ``run_settings.settle_lr``."""
import logging
from typing import Optional, Tuple

from timm.scheduler import create_scheduler_v2, scheduler_kwargs

from timm_paco.cli.usage import UsageError

__all__ = ['RunComplete', 'updates_per_epoch', 'create_schedule']

_logger = logging.getLogger('train')


def updates_per_epoch(args, loader) -> int:
    """Optimiser steps per epoch: batches over ``--grad-accum-steps``, a last partial group counted."""
    return (len(loader) + args.grad_accum_steps - 1) // args.grad_accum_steps


class RunComplete(Exception):
    """``--resume auto`` of a run with no epoch left: the same command run again does nothing (timm 1.0.31)."""


def _check_epochs_left(args, start_epoch: int, end_epoch: int, num_epochs: int) -> None:
    """UsageError when the run would start at or past its last epoch (``end_epoch``: the schedule's end or
    ``--stop-epoch``): it would exit having done nothing. ``RunComplete`` for ``--resume auto``."""
    if start_epoch < end_epoch:
        return
    if getattr(args, 'resume_auto', False):
        raise RunComplete(f'--resume auto: {args.resume} finished epoch {start_epoch - 1}, the last of its '
                          f'{"--stop-epoch" if end_epoch < num_epochs else "--epochs"} {end_epoch}; nothing is left '
                          f'to train')
    given = (f'--start-epoch {args.start_epoch}' if args.start_epoch is not None else
             f'--resume {args.resume}: its run finished epoch {start_epoch - 1}, and')
    limit = (f'--stop-epoch {end_epoch} stops after epoch {end_epoch - 1}' if end_epoch < num_epochs else
             f'--epochs {args.epochs} schedules epochs 0 to {num_epochs - 1}')
    raise UsageError(f'{given} {limit}: nothing is left to train; give a larger --epochs (or --stop-epoch) to '
                     f'train on')


def create_schedule(args, optimizer, loader, decreasing: bool, resume_epoch: Optional[int]) -> Tuple:
    """timm's scheduler for ``optimizer`` over ``--epochs``, stepped to the start epoch; returns (scheduler or None,
    the epoch count this run trains to: the schedule's, or ``--stop-epoch``, start epoch)."""
    updates = updates_per_epoch(args, loader)
    lr_scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(args, decreasing_metric=decreasing), updates_per_epoch=updates)
    start_epoch = args.start_epoch if args.start_epoch is not None else (resume_epoch or 0)
    end_epoch = min(num_epochs, getattr(args, 'stop_epoch', None) or num_epochs)
    _check_epochs_left(args, start_epoch, end_epoch, num_epochs)
    if lr_scheduler is not None and start_epoch > 0:
        if args.sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates)
        else:
            lr_scheduler.step(start_epoch)
    stop = f', stopping after {end_epoch} (--stop-epoch)' if end_epoch < num_epochs else ''
    _logger.info(f'Scheduled epochs: {num_epochs}{stop}, {updates} updates per epoch.')
    return lr_scheduler, end_epoch, start_epoch
