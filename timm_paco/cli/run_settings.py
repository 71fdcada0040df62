"""train.py's flags resolved into the run's settings: the one module that writes train.py's ``args``.

``args`` stays the namespace timm's own helpers read (``optimizer_kwargs(cfg=args)``, ``resolve_data_config(vars(args))``,
``scheduler_kwargs``, ``CheckpointSaver(args=...)``) and ``args.yaml`` records. Each function below settles the flags
whose value one step of ``build_run`` is the first to know, in this order; every other module only reads them, and
no flag changes after it is settled:

    settle_flags(args)                           timm's aliases, the loss, the prefetcher, the device: nothing built
    settle_resume(args)                          --resume auto / FOLDER: the checkpoint file (or '' for a fresh run)
    settle_model_flags(args, model, method)      the class count, the method and the defaults it sets
    settle_lr(args, loader) -> float             --lr from --lr-base and the batch size of the training loader
    settle_restored_flags(args, saved) -> [str]  --lr / --weight-decay / --momentum of a resumed optimizer state
"""
import logging
from typing import Any, Dict, List

from timm_paco.cli.inputs import resolve_device
from timm_paco.cli.run_checkpoints import find_resume
from timm_paco.cli.train_loss import resolve_loss
from timm_paco.methods import Method

__all__ = ['RESTORED_FLAGS', 'settle_flags', 'settle_resume', 'settle_model_flags', 'settle_lr',
           'settle_restored_flags']

_logger = logging.getLogger('train')

# flags whose value the resumed optimizer state restores (its param groups' lr / initial_lr, weight decay, momentum)
RESTORED_FLAGS = ('lr', 'weight_decay', 'momentum')


def settle_flags(args) -> None:
    """What the flags alone decide: ``--data`` (timm's deprecated positional) as ``--data-dir``, ``--bce-loss`` /
    ``--jsd-loss`` as ``--loss``, the prefetcher (``--no-prefetcher``), the device (``--device`` unset: CUDA when
    there is one, else the CPU)."""
    args.data_dir = args.data_dir or args.data
    args.loss = resolve_loss(args)
    args.prefetcher = not args.no_prefetcher
    args.device = resolve_device(args.device)


def settle_resume(args) -> None:
    """``--resume`` as the checkpoint file to resume (``find_resume``); ``args.resume_auto`` keeps a ``--resume
    auto`` for ``args.yaml``."""
    if args.resume == 'auto':
        args.resume_auto = True
    args.resume = find_resume(args)


def settle_model_flags(args, model, method: Method) -> None:
    """After the model and its method are known: ``--num-classes`` (the model's), ``--task`` (the method's name),
    the defaults the method sets on the shared flags left at None (``--smoothing``, ``--view-forward``) and on its
    own that take a value from the others (``MethodFlag.late_default``); ``--dist-bn`` off under ``--sync-bn``
    (the statistics are synchronised every step)."""
    args.num_classes = args.num_classes or model.num_classes
    args.task = method.name
    if args.smoothing is None:
        args.smoothing = method.smoothing or 0.0
    if args.view_forward is None:
        args.view_forward = method.view_forward
    for flag in method.flags:
        if flag.late_default is not None and getattr(args, flag.dest) is None:
            setattr(args, flag.dest, flag.late_default(args))
    if args.distributed and args.sync_bn:
        args.dist_bn = ''


def settle_lr(args, loader) -> float:
    """``--lr`` from ``--lr-base`` scaled by the global batch / ``--lr-base-size`` (linear, or sqrt for adaptive
    optimisers) when it is not given; returns the batch size of that scaling (``-b``, or the training loader's
    average batch with ``--train-img-sizes``), which ``--variable-batch-loss-scale`` is relative to."""
    batch_size_reference = float(args.batch_size)
    if args.train_img_sizes is not None:
        batch_size_reference = loader.batch_sampler.average_batch_size
    if args.lr:
        return batch_size_reference
    global_batch_size = batch_size_reference * args.world_size * args.grad_accum_steps
    batch_ratio = global_batch_size / args.lr_base_size
    if not args.lr_base_scale:
        args.lr_base_scale = 'sqrt' if any(o in args.opt.lower() for o in ('ada', 'lamb')) else 'linear'
    if args.lr_base_scale == 'sqrt':
        batch_ratio = batch_ratio ** 0.5
    args.lr = args.lr_base * batch_ratio
    _logger.info(f'Learning rate {args.lr} from --lr-base {args.lr_base} and global batch {global_batch_size:g}.')
    return batch_size_reference


def settle_restored_flags(args, saved: Dict[str, Any]) -> List[str]:
    """After a resume with the optimizer state: the flags of ``RESTORED_FLAGS`` given another value than the
    resumed run's (``saved``, its recorded arguments) are set back to it (what the run really uses, and what
    ``args.yaml`` records); returns one warning per flag."""
    warnings = []
    for dest in RESTORED_FLAGS:
        if dest in saved and saved[dest] is not None and getattr(args, dest) not in (None, saved[dest]):
            flag = '--' + dest.replace('_', '-')
            warnings.append(f'{flag} {getattr(args, dest)}: the resumed optimizer state keeps the run\'s {flag} '
                            f'{saved[dest]}, which this run uses (and args.yaml records); --no-resume-opt starts '
                            f'the optimizer afresh with the new value')
            setattr(args, dest, saved[dest])
    return warnings
