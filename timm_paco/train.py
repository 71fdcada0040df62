"""Train timm models with timm_paco's methods (PaCo, GPaCo, DSCL, the long-tail toolkit): the training driver.

Takes the flags of timm's own train.py (same names, defaults and meanings) plus ``--task`` and ``--paco-*``;
built on timm's library (datasets, loaders, optimisers, schedulers, ``timm.task``, ``CheckpointSaver``).

    python -m timm_paco.train --data-dir /data --dataset torch/cifar100 --model paco_resnet32 --img-size 32 ...
    torchrun --nproc_per_node 8 -m timm_paco.train --data-dir /imagenet --dataset lt:ImageNet_LT_train.txt \\
        --model paco_resnet50 --task paco --amp --channels-last ...

Batches are view-major: ``input [V·B, C, H, W]``, ``target [B]`` (``timm_paco.data.stack_views``). Each epoch
reseeds the global RNGs from ``(--seed, epoch, rank)``, so ``--resume`` of an epoch checkpoint continues
exactly as the uninterrupted run (bit-exact on CPU with ``--workers 0``).
"""
import importlib
import json
import logging
import os
import sys

import torch
from timm import utils
from timm.data import resolve_data_config
from timm.layers import set_fast_norm
from timm.models import safe_model_name
from timm.optim import create_optimizer_v2, optimizer_kwargs

from timm_paco.cli.errors import run_main
from timm_paco.cli.interrupts import RunInterrupted, install_stop_signals, stopped_run
from timm_paco.cli.precision import resolve_precision
from timm_paco.cli.train_args import parse_args
from timm_paco.cli.inputs import check_input_size
from timm_paco.cli.train_checks import (
    check_combinations, check_inputs, check_patch_model, check_values, flag_warnings,
)
from timm_paco.cli.train_data import create_eval_loader, create_train_datasets, create_train_loader
from timm_paco.cli.train_loop import TrainRun, run_epochs
from timm_paco.cli.train_model import create_train_model, place_model, resolve_method
from timm_paco.cli.run_settings import settle_flags, settle_lr, settle_model_flags, settle_resume
from timm_paco.cli.run_lock import release_run_locks
from timm_paco.cli.train_output import check_output_folder, create_run_output, push_run_to_hub
from timm_paco.cli.train_schedule import RunComplete, create_schedule
from timm_paco.cli.train_task import create_train_task, prepare_task
from timm_paco.cli.train_views import plan_views
from timm_paco.cli.usage import UsageError
from timm_paco.data import match_model_channels
from timm_paco.finite import NonFiniteError

_logger = logging.getLogger('train')


def _set_up_process(args):
    """Device modules, CUDA math flags, the Hub token check, the (distributed) device, the precision and the seed;
    returns (device, precision)."""
    for module in args.device_modules or ():
        importlib.import_module(module)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if args.push_to_hub:
        from timm_paco.hub import require_token
        try:
            require_token()  # fail before training, not after it
        except ValueError as e:
            raise UsageError(f'--push-to-hub {args.push_to_hub}: {e}') from None
    device = utils.init_distributed_device(args)
    where = f'process {args.rank} of {args.world_size}' if args.distributed else 'a single process'
    _logger.info(f'Training with {where} on {args.device}.')
    precision = resolve_precision(args.model_dtype, args.amp, args.amp_dtype)
    if precision.amp_dtype is not None:
        scaler = 'on' if precision.loss_scaler(device) is not None else 'off'
        _logger.info(f'Mixed precision: autocast {precision.amp_dtype}, grad scaler {scaler}.')
    utils.random_seed(args.seed, args.rank)
    if args.fuser:
        utils.set_jit_fuser(args.fuser)
    if args.fast_norm:
        set_fast_norm()
    return device, precision


def _log_model(args, model, method, views) -> None:
    if utils.is_primary(args):
        _logger.info(f'Model {safe_model_name(args.model)} created, task {method.name}, {views.num_views} view(s) '
                     f'({views.recipe}), param count: {sum(p.numel() for p in model.parameters())}')


def _data_config(args, model, in_chans: int, views):
    """timm's data config of the model and flags (its channels the model's), checked against the model."""
    data_config = match_model_channels(
        resolve_data_config(vars(args), model=model, verbose=utils.is_primary(args)), in_chans)
    check_input_size(model, data_config['input_size'], args.model)
    check_patch_model(args, views, model, data_config['input_size'])
    return data_config


def build_run(parser, args) -> TrainRun:
    """train.py's build order, top to bottom: the flags are settled (``cli/run_settings.py``, the one module that
    writes ``args``) as soon as a step knows their value and never change after; every refusal (a ``UsageError``)
    comes before anything is written."""
    # arguments: the flags alone, their values, the inputs, --resume, the output folder
    settle_flags(args)
    check_values(args)
    check_inputs(args)
    settle_resume(args)
    check_output_folder(args)
    device, precision = _set_up_process(args)

    # model and method: the plain timm model, the method (--task or the model's recipe) and its flag defaults
    in_chans = args.in_chans or (args.input_size[0] if args.input_size is not None else 3)
    model, initial_projector = create_train_model(args, in_chans)
    method = resolve_method(args, model)
    settle_model_flags(args, model, method)
    views = plan_views(args, method)
    check_combinations(args, method, views)
    for warning in flag_warnings(parser, args, method.name) if utils.is_primary(args) else ():
        _logger.warning(warning)
    _log_model(args, model, method, views)
    data_config = _data_config(args, model, in_chans, views)
    model = place_model(model, args, device, precision.model_dtype)

    # data: datasets and class counts, the V-view (or timm's) loaders, --lr from the batch size they give
    dataset_train, dataset_eval, class_counts = create_train_datasets(args, method, data_config)
    loader_train, mixup_fn = create_train_loader(args, dataset_train, data_config, views, device, precision.model_dtype)
    batch_size_reference = settle_lr(args, loader_train)
    loader_eval = create_eval_loader(args, dataset_eval, data_config, device, precision.model_dtype)

    # task (projector, key encoder, queue, loss), optimiser, resume / EMA / compile / DDP, schedule, output
    task = create_train_task(args, method, model, views.num_views, class_counts, initial_projector, device,
                             precision.model_dtype)
    optimizer = create_optimizer_v2(task.get_trainable_module(), **optimizer_kwargs(cfg=args),
                                    filter_bias_and_bn=not args.wd_bias_and_norm, **args.opt_kwargs)
    loss_scaler = precision.loss_scaler(device)
    resume_epoch = prepare_task(task, args, optimizer, loss_scaler, device)
    eval_metric = args.eval_metric if loader_eval is not None else 'loss'
    lr_scheduler, num_epochs, start_epoch = create_schedule(
        args, optimizer, loader_train, eval_metric == 'loss', resume_epoch)
    output = create_run_output(args, task, optimizer, loss_scaler, data_config, class_counts,
                               decreasing=eval_metric == 'loss', start_epoch=start_epoch)
    return TrainRun(
        args=args, task=task, optimizer=optimizer, device=device, loader_train=loader_train, loader_eval=loader_eval,
        amp_autocast=precision.autocast(device), loss_scaler=loss_scaler, model_dtype=precision.model_dtype,
        mixup_fn=mixup_fn, lr_scheduler=lr_scheduler, batch_size_reference=batch_size_reference,
        eval_metric=eval_metric, output=output, start_epoch=start_epoch, num_epochs=num_epochs)


def _last_good_checkpoint(run: TrainRun) -> str:
    """Where the last finite model is, for the message of a diverged run."""
    path = os.path.join(run.output.output_dir or '', 'last.pth.tar')
    if run.output.output_dir and os.path.isfile(path):
        return (f'the last checkpoint, {path}, holds the last finite model (no non-finite model is saved): '
                f'lower --lr or resume from it with --resume')
    return 'no checkpoint was written before it; lower --lr (or --max-nonfinite-steps N to skip bad updates)'


def main(argv=None):
    utils.setup_default_logging()
    parser, args = parse_args(argv)
    try:
        return _train(parser, args)
    finally:
        release_run_locks()  # the --experiment folder's lock (also released at exit)


def _train(parser, args):
    try:
        run = build_run(parser, args)
    except UsageError as e:  # one line, argparse's exit code for usage errors
        print(f'{parser.prog}: error: {e}', file=sys.stderr)
        raise SystemExit(2) from None
    except RunComplete as e:  # --resume auto of a finished run: the same command again does nothing
        _logger.info(str(e))
        return []

    try:
        results = run_epochs(run)
    except NonFiniteError as e:
        raise NonFiniteError(f'{e}; {_last_good_checkpoint(run)}') from None
    except RunInterrupted as e:  # no push, no result: one line saying where to resume, exit 130 / 143
        raise stopped_run(e, e.epoch, run.output.output_dir) from None
    if args.distributed:
        torch.distributed.destroy_process_group()
    best_metric, best_epoch = run.best
    if best_metric is not None:
        _logger.info(f'*** Best metric: {best_metric} (epoch {best_epoch})')
    if utils.is_primary(args):
        if args.push_to_hub and run.output.output_dir is not None:
            push_run_to_hub(args, run.output.output_dir)
        print(f'--result\n{json.dumps(results[-10:], indent=4)}')
    return results


def cli() -> int:
    """The command line (``python -m timm_paco.train``, the repository's ``train.py``, ``timm-paco-train``): Ctrl-C
    and SIGTERM stop the run at the next step (exit 130 / 143), errors end in one line; returns the exit code."""
    install_stop_signals()
    return run_main(main, 'train.py')


if __name__ == '__main__':
    sys.exit(cli())
