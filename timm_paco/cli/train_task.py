"""train.py's task: the ``timm.task`` of ``--task`` (with its loss from the ``--paco-*`` flags, or timm's
mixup / BCE classification loss), then resume, EMA, torch.compile and DDP set up on it."""
import logging
from typing import Optional

from timm import utils
from timm.loss import create_classification_loss
from timm.task import ClassificationTask, load_task_ema_checkpoint, resume_task_checkpoint

from timm_paco.cli.train_data import mixup_active
from timm_paco.tasks import create_task, resolve_logit_adjust
from timm_paco.tasks.initial_weights import load_initial_projector

__all__ = ['create_train_task', 'prepare_task']

_logger = logging.getLogger('train')


def _queue_size(args, task: str) -> Optional[int]:
    """The queue slots ``task`` keeps: ``--paco-queue-size`` for paco, ``--gpaco-queue-size`` for gpaco."""
    return {'paco': args.paco_queue_size, 'gpaco': args.gpaco_queue_size}.get(task)


def _timm_classification_task(args, model, **task_kwargs) -> ClassificationTask:
    """timm's classification task with its soft-target / BCE loss (``--mixup`` / ``--cutmix`` / ``--bce-loss``)."""
    criterion = create_classification_loss(
        loss_type='bce' if args.bce_loss else None, smoothing=args.smoothing, soft_targets=mixup_active(args),
        pos_weight=args.bce_pos_weight, bce_target_thresh=args.bce_target_thresh, bce_sum=args.bce_sum)
    return ClassificationTask(model, criterion=criterion, **task_kwargs)


def create_train_task(args, task: str, model, trainable, num_views: int, class_counts, initial_projector,
                      device, dtype):
    """The task training ``trainable`` (``model`` or its ContrastiveModule); ``initial_projector``: the projector
    weights of ``--initial-checkpoint`` (``{}`` without)."""
    task_kwargs = dict(device=device, dtype=dtype, verbose=utils.is_primary(args))
    if mixup_active(args) or args.bce_loss:
        result = _timm_classification_task(args, model, **task_kwargs)
    else:
        logit_adjust = resolve_logit_adjust(task, args.paco_logit_adjust, class_counts)
        result = create_task(
            task, trainable, num_views=num_views, class_counts=class_counts,
            logit_adjust='on' if logit_adjust else 'off', prior_tau=args.prior_tau, smoothing=args.smoothing,
            alpha=args.paco_alpha, beta=args.paco_beta, gamma=args.paco_gamma, temperature=args.paco_temperature,
            queue_size=_queue_size(args, task), momentum=args.paco_momentum, **task_kwargs)
        if load_initial_projector(result, initial_projector, args.initial_checkpoint):
            _logger.info(f'Projector weights from --initial-checkpoint {args.initial_checkpoint}.')
    if utils.is_primary(args):
        _logger.info(f'Task {type(result).__name__}: {result.criterion}')
    return result


def prepare_task(task, args, optimizer, loss_scaler, device) -> Optional[int]:
    """``--resume`` (task, optimizer and scaler state), ``--model-ema``, ``--torchcompile`` and DDP on ``task``;
    returns the epoch to resume from (None without ``--resume``)."""
    resume_epoch = None
    if args.resume:
        resume_epoch = resume_task_checkpoint(
            task, args.resume, optimizer=None if args.no_resume_opt else optimizer,
            loss_scaler=None if args.no_resume_opt else loss_scaler, log_info=utils.is_primary(args))
    if args.model_ema:
        task.setup_ema(decay=args.model_ema_decay, use_warmup=args.model_ema_warmup,
                       device='cpu' if args.model_ema_force_cpu else None)
        if args.resume:
            load_task_ema_checkpoint(task, args.resume)
    if args.torchcompile:
        task.compile(backend=args.torchcompile, mode=args.torchcompile_mode)
        if task.has_ema():
            task.compile_ema(backend=args.torchcompile, mode=args.torchcompile_mode)
    if args.distributed:
        task.prepare_distributed(
            device_ids=[device] if device.type == 'cuda' else None, broadcast_buffers=not args.no_ddp_bb)
    return resume_epoch
