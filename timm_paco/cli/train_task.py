"""train.py's task: the ``timm.task`` of the run's method (``--task``, its loss from the method's flags), or timm's
classification task of ``--mixup`` / ``--loss``; then resume, EMA, torch.compile and DDP set up on it."""
import argparse
import logging
from typing import Any, Dict, Optional

from timm import utils
from timm.task import ClassificationTask, load_task_ema_checkpoint, resume_task_checkpoint

from timm_paco.checkpoint_io import load_checkpoint_file
from timm_paco.cli.train_data import mixup_active
from timm_paco.cli.run_settings import settle_restored_flags
from timm_paco.cli.train_loss import loss_class_weight, replaces_loss, timm_criterion
from timm_paco.methods import Method
from timm_paco.tasks.initial_weights import load_initial_projector

__all__ = ['create_train_task', 'check_resume_checkpoint', 'prepare_task', 'resume_run']

_logger = logging.getLogger('train')


def create_train_task(args, method: Method, model, num_views: int, class_counts, initial_projector, device,
                      dtype):
    """The task of ``method`` training ``model`` (its task builds any projector it trains beside it), from the
    shared flags and the method's own; ``initial_projector``: the projector weights of ``--initial-checkpoint``
    (``{}`` without)."""
    task_kwargs = dict(device=device, dtype=dtype, verbose=utils.is_primary(args))
    class_weight = loss_class_weight(args, class_counts)
    if mixup_active(args) or replaces_loss(args):  # timm's task and loss: --mixup / --cutmix, --loss bce / asl / poly
        criterion = timm_criterion(args, mixup_active(args), class_weight)
        result = ClassificationTask(model, criterion=criterion, **task_kwargs)
    else:
        projector = dict(proj_dim=args.paco_proj_dim, proj_type=args.paco_proj_type) if method.projector else None
        result = method.create_task(
            model, num_views=num_views, class_counts=class_counts, logit_adjust=args.paco_logit_adjust,
            prior_tau=args.prior_tau, smoothing=args.smoothing, projector=projector,
            classifier_retrain=args.classifier_retrain, view_forward=args.view_forward, **task_kwargs,
            **({} if class_weight is None else {'class_weight': class_weight}), **method.own_values(args))
        if load_initial_projector(result, initial_projector, args.initial_checkpoint):
            _logger.info(f'Projector weights from --initial-checkpoint {args.initial_checkpoint}.')
    if utils.is_primary(args):
        projector = getattr(getattr(result, 'module', None), 'projector', None)
        if projector is not None:
            _logger.info(f'Projector {projector.config}, param count: {sum(p.numel() for p in projector.parameters())}')
        _logger.info(f'Task {type(result).__name__}: {result.criterion}')
    return result


def check_resume_checkpoint(path: str) -> Dict[str, Any]:
    """``--resume`` must name a train.py checkpoint (model, optimizer and task state), read with the project's one
    safe reader; ValueError / FileNotFoundError naming the flag, the file and the fix otherwise. Returns the
    flags the checkpoint's run used (``{}`` when it has none)."""
    checkpoint = load_checkpoint_file(path, flag='--resume')
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise ValueError(f'--resume {path}: not a train.py checkpoint (no state_dict with epoch and optimizer '
                         f'state); to start from its weights use --initial-checkpoint {path}')
    saved = checkpoint.get('args')
    return vars(saved) if isinstance(saved, argparse.Namespace) else dict(saved or {})


def resume_run(task, args, optimizer, loss_scaler) -> Optional[int]:
    """``--resume``: the task, optimizer and scaler state (not the optimizer's with ``--no-resume-opt``); returns
    the epoch to go on from. Every failure is a ValueError naming the flag and the file."""
    saved = check_resume_checkpoint(args.resume)
    try:
        epoch = resume_task_checkpoint(
            task, args.resume, optimizer=None if args.no_resume_opt else optimizer,
            loss_scaler=None if args.no_resume_opt else loss_scaler, log_info=utils.is_primary(args))
    except (ValueError, KeyError, RuntimeError) as e:
        raise ValueError(f'--resume {args.resume}: {e}') from e
    if not args.no_resume_opt:
        for warning in settle_restored_flags(args, saved):  # every rank keeps the values, the primary says so
            if utils.is_primary(args):
                _logger.warning(warning)
    return epoch


def prepare_task(task, args, optimizer, loss_scaler, device) -> Optional[int]:
    """``--resume`` (task, optimizer and scaler state), ``--model-ema``, ``--torchcompile`` and DDP on ``task``;
    returns the epoch to resume from (None without ``--resume``)."""
    resume_epoch = resume_run(task, args, optimizer, loss_scaler) if args.resume else None
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
