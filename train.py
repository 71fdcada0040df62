#!/usr/bin/env python3
""" Train timm models with the PaCo / GPaCo / CE / Balanced Softmax tasks of timm_paco.

Takes the flags of timm's own train.py (same names, defaults and meanings) plus ``--task`` and ``--paco-*``;
built on timm's library (datasets, loaders, optimisers, schedulers, ``timm.task``, ``CheckpointSaver``).

    python train.py --data-dir /data --dataset torch/cifar100 --model paco_resnet32 --img-size 32 ...
    torchrun --nproc_per_node 8 train.py --data-dir /imagenet --dataset lt:ImageNet_LT_train.txt \\
        --model paco_resnet50 --task paco --amp --channels-last ...

Batches are view-major: ``input [V·B, C, H, W]``, ``target [B]`` (``timm_paco.data.stack_views``). Each epoch
reseeds the global RNGs from ``(--seed, epoch, rank)``, so ``--resume`` of an epoch checkpoint continues
exactly as the uninterrupted run (bit-exact on CPU with ``--workers 0``).
"""
import json
import logging
import os
import time
from collections import OrderedDict
from contextlib import suppress
from datetime import datetime
from functools import partial
from typing import List, Optional

import torch
import torch.nn as nn
import torchvision.utils

from timm import utils
from timm.data import FastCollateMixup, Mixup, create_loader, create_transform, resolve_data_config
from timm.layers import convert_sync_batchnorm, set_fast_norm
from timm.loss import create_classification_loss
from timm.models import create_model, safe_model_name
from timm.optim import create_optimizer_v2, get_optimizer_info, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.task import ClassificationTask, evaluation_sample_limit, load_task_ema_checkpoint, resume_task_checkpoint

from timm_paco.data import (
    MultiViewTransform, NoLabelsError, check_dataset_classes, check_imb_factor, count_classes, create_paco_dataset,
    create_view_loader, create_view_transform, match_model_channels, parse_view_recipe, save_class_counts,
)
from timm_paco.cli.train_args import TIMM_VIEWS, parse_args
from timm_paco.models import recipe_for
from timm_paco.tasks.initial_weights import load_initial_projector, read_initial_checkpoint
from timm_paco.tasks import (
    TASK_SMOOTHING, create_contrastive_module, create_task, resolve_logit_adjust,
)

_logger = logging.getLogger('train')

_EPOCH_SEED_STRIDE = 10007  # per-epoch reseed: seed + stride * epoch (+ rank)


def _is_second_order(opt: str) -> bool:
    """Whether timm's ``--opt`` (e.g. ``adahessian``, ``lookahead_adahessian``) needs a double backward."""
    try:
        return get_optimizer_info(opt.lower().split('_')[-1]).second_order
    except ValueError:  # an unknown name: timm's own error comes when the optimiser is built
        return False


# --paco-* flags and the tasks that read them
_TASK_FLAGS = {
    'paco_alpha': ('paco', 'gpaco'), 'paco_beta': ('paco', 'gpaco'), 'paco_gamma': ('paco', 'gpaco'),
    'paco_temperature': ('paco', 'gpaco'), 'paco_logit_adjust': ('paco', 'gpaco'), 'paco_queue_size': ('paco',),
    'paco_momentum': ('paco',), 'gpaco_queue_size': ('gpaco',),
}


def _unused_task_flags(parser, args, task: str):
    """The ``--paco-*`` flags given (not at their defaults) that ``task`` does not read."""
    return ['--' + dest.replace('_', '-') for dest, tasks in _TASK_FLAGS.items()
            if task not in tasks and getattr(args, dest) != parser.get_default(dest)]


def _queue_size(args, task: str) -> Optional[int]:
    """The queue slots ``task`` keeps: ``--paco-queue-size`` for paco, ``--gpaco-queue-size`` for gpaco."""
    return {'paco': args.paco_queue_size, 'gpaco': args.gpaco_queue_size}.get(task)


def _flag_warnings(parser, args, task: str) -> List[str]:
    """Warnings about flags the run takes but does not fully honour."""
    warnings = []
    unused = _unused_task_flags(parser, args, task)
    if unused:
        warnings.append(f'--task {task} does not use {", ".join(unused)}; ignored')
    if args.use_multi_epochs_loader:
        warnings.append('--use-multi-epochs-loader keeps its workers across epochs, so they are not reseeded each '
                        'epoch: a resumed run does not repeat the augmentations of an unbroken one')
    return warnings


def _check_values(parser, args) -> None:
    """Stop with a usage error on flag values that are wrong whatever the model and task."""
    if args.imb_factor is not None:
        try:
            check_imb_factor(args.imb_factor)
        except ValueError as e:
            parser.error(str(e))
    if args.paco_views not in (None, TIMM_VIEWS):
        try:
            parse_view_recipe(args.paco_views, arg_name='--paco-views')
        except ValueError as e:
            parser.error(str(e))


def _check_args(parser, args, task: str, num_views: int, timm_views: bool) -> None:
    """Stop with a clear message on flags that cannot combine with ``task`` and its views."""
    mixup = args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None
    if args.naflex_loader:
        parser.error('--naflex-loader: NaFlex patch batches are not supported by the timm_paco tasks')
    if args.kd_model_name is not None:
        parser.error('--kd-model-name selects timm\'s distillation tasks, which do not combine with --task; '
                     'use timm\'s train.py for distillation')
    if args.aug_splits or args.jsd_loss or args.split_bn:
        parser.error('--aug-splits / --jsd-loss / --split-bn (AugMix splits) do not combine with the view batches '
                     'of the timm_paco tasks; use --paco-views for several views per image')
    if (mixup or args.bce_loss) and (task != 'ce' or not timm_views):
        parser.error(f'--mixup / --cutmix / --bce-loss mix or soften the targets; they work only with --task ce '
                     f'and --paco-views {TIMM_VIEWS} (got --task {task} with {num_views} view(s))')
    if args.prior_tau != 1.0 and (task == 'ce' or (task in ('paco', 'gpaco') and args.paco_logit_adjust == 'off')):
        parser.error(f'--prior-tau {args.prior_tau}: --task {task} adds no class prior'
                     + (' with --paco-logit-adjust off' if task != 'ce' else ''))
    if task == 'paco' and num_views != 2:
        parser.error(f'--task paco needs two views per image (query, key); --paco-views gives {num_views}')
    if task in ('paco', 'gpaco') and _is_second_order(args.opt):
        parser.error(f'--opt {args.opt}: a second-order optimiser differentiates the gradients, and the '
                     f'paco / gpaco losses have hand-written first-order gradients; use a first-order --opt')
    low_precision = args.model_dtype in ('float16', 'bfloat16')
    if low_precision and (task == 'paco' or args.model_ema):
        parser.error(f'--model-dtype {args.model_dtype}: an exponential moving average (the paco key encoder, '
                     f'--model-ema) kept in {args.model_dtype} loses most updates to rounding; use --amp with a '
                     f'float32 model')
    if args.tta > 1:
        parser.error(f'--tta {args.tta}: the eval loader makes no augmented copies to fold; evaluate test-time '
                     f'augmentation separately')
    if args.torchscript and task in ('paco', 'gpaco'):
        parser.error('--torchscript: the paco / gpaco models are not scriptable; use --torchcompile')
    if not timm_views:
        for flag, value in (('--train-img-sizes', args.train_img_sizes),
                            ('--train-batches-per-epoch', args.train_batches_per_epoch),
                            ('--aug-repeats', args.aug_repeats or None)):
            if value is not None:
                parser.error(f'{flag} works only with timm\'s single-view loader (--paco-views {TIMM_VIEWS})')
        if args.resplit and args.no_prefetcher:
            parser.error('--resplit with --paco-views needs the prefetcher (it skips erasing view 0 on the device)')


def _create_model(args, in_chans: int):
    """The plain timm model of ``--model``, its task (``--task``, else the name's paper recipe, else ce) and the
    projector weights of ``--initial-checkpoint`` (``{}`` without)."""
    kwargs = dict(
        pretrained=args.pretrained,
        in_chans=in_chans,
        num_classes=args.num_classes,
        drop_rate=args.drop,
        drop_path_rate=args.drop_path if args.drop_path is not None else args.drop_connect,
        drop_block_rate=args.drop_block,
        global_pool=args.gp,
        bn_momentum=args.bn_momentum,
        bn_eps=args.bn_eps,
        scriptable=args.torchscript,
        **args.model_kwargs,
    )
    if args.pretrained_path:
        kwargs['pretrained_cfg_overlay'] = dict(file=args.pretrained_path, num_classes=-1)
    model = create_model(args.model, **kwargs)
    projector = read_initial_checkpoint(model, args.initial_checkpoint) if args.initial_checkpoint else {}
    recipe = recipe_for(model.pretrained_cfg.get('architecture'))
    task = args.task or (recipe.task if recipe else 'ce')
    if args.head_init_scale is not None:
        with torch.no_grad():
            model.get_classifier().weight.mul_(args.head_init_scale)
            model.get_classifier().bias.mul_(args.head_init_scale)
    if args.head_init_bias is not None:
        nn.init.constant_(model.get_classifier().bias, args.head_init_bias)
    return model, task, projector


def _view_transform(args, recipe: str, data_config, interpolation: str):
    """The V-view training transform of ``recipe`` from timm's augmentation flags."""
    input_size = data_config['input_size']
    common = dict(mean=data_config['mean'], std=data_config['std'], use_prefetcher=args.prefetcher)
    names = parse_view_recipe(recipe)
    if args.no_aug:
        plain = create_transform(input_size, is_training=True, no_aug=True, interpolation=interpolation, **common)
        return MultiViewTransform([plain] * len(names))
    optional = {k: v for k, v in (
        ('rand_augment', args.aa), ('grayscale_prob', args.grayscale_prob),
        ('color_jitter_prob', args.color_jitter_prob),
        ('gaussian_blur_prob', args.gaussian_blur_prob)) if v is not None}
    return create_view_transform(
        input_size, views=names, scale=tuple(args.scale), ratio=tuple(args.ratio), hflip=args.hflip,
        vflip=args.vflip, interpolation=interpolation, train_crop_mode=args.train_crop_mode,
        color_jitter=args.color_jitter, re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
        **optional, **common)


def _reseed(args, epoch: int) -> None:
    """Global RNGs as a function of (seed, epoch, rank): augmentation and shuffling restart exactly on resume
    (the loaders' workers are not persistent, so they take their seeds from these RNGs every epoch)."""
    utils.random_seed(args.seed + _EPOCH_SEED_STRIDE * epoch, args.rank)


def _set_loader_epoch(loader, epoch: int) -> None:
    for obj in (loader.dataset, getattr(loader, 'batch_sampler', None), getattr(loader, 'sampler', None)):
        if hasattr(obj, 'set_epoch'):
            obj.set_epoch(epoch)
            return


def main(argv=None):
    utils.setup_default_logging()
    parser, args, args_text = parse_args(argv)
    _check_values(parser, args)

    if args.device_modules:
        import importlib
        for module in args.device_modules:
            importlib.import_module(module)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    if args.push_to_hub:
        from timm_paco.hub import require_token
        try:
            require_token()  # fail before training, not after it
        except ValueError as e:
            parser.error(f'--push-to-hub {args.push_to_hub}: {e}')
    args.prefetcher = not args.no_prefetcher
    device = utils.init_distributed_device(args)
    if args.distributed:
        _logger.info(f'Distributed training: process {args.rank} of {args.world_size}, device {args.device}.')
    else:
        _logger.info(f'Training with a single process on {args.device}.')

    model_dtype = None
    if args.model_dtype:
        if args.model_dtype not in ('float32', 'float16', 'bfloat16'):
            parser.error(f'--model-dtype: expected float32, float16 or bfloat16, got {args.model_dtype}')
        model_dtype = getattr(torch, args.model_dtype)
    amp_dtype = torch.float16
    if args.amp:
        if model_dtype not in (None, torch.float32):
            parser.error('--amp needs a float32 model (--model-dtype float32 or unset)')
        if args.amp_dtype not in ('float16', 'bfloat16'):
            parser.error(f'--amp-dtype: expected float16 or bfloat16, got {args.amp_dtype}')
        amp_dtype = getattr(torch, args.amp_dtype)

    utils.random_seed(args.seed, args.rank)
    if args.fuser:
        utils.set_jit_fuser(args.fuser)
    if args.fast_norm:
        set_fast_norm()

    in_chans = args.in_chans or (args.input_size[0] if args.input_size is not None else 3)
    model, task_name, initial_projector = _create_model(args, in_chans)
    if args.num_classes is None:
        args.num_classes = model.num_classes
    args.task = task_name
    recipe = args.paco_views or ('randcls_sim' if task_name in ('paco', 'gpaco') else TIMM_VIEWS)
    timm_views = recipe == TIMM_VIEWS
    num_views = 1 if timm_views else len(parse_view_recipe(recipe))
    _check_args(parser, args, task_name, num_views, timm_views)
    for warning in _flag_warnings(parser, args, task_name) if utils.is_primary(args) else ():
        _logger.warning(warning)
    if args.smoothing is None:
        args.smoothing = TASK_SMOOTHING[task_name]
    if args.grad_checkpointing:
        model.set_grad_checkpointing(enable=True)
    if utils.is_primary(args):
        _logger.info(f'Model {safe_model_name(args.model)} created, task {task_name}, {num_views} view(s) '
                     f'({recipe}), param count: {sum(p.numel() for p in model.parameters())}')

    data_config = match_model_channels(
        resolve_data_config(vars(args), model=model, verbose=utils.is_primary(args)), in_chans)
    model.to(device=device, dtype=model_dtype)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.distributed and args.sync_bn:
        args.dist_bn = ''
        model = convert_sync_batchnorm(model)
    if args.torchscript:
        model = torch.jit.script(model)
    # the contrastive tasks train the model through a projector, made here (on the model's device and dtype) so the
    # random initialisation follows the model's as in earlier releases
    trainable = model
    if task_name in ('paco', 'gpaco'):
        trainable = create_contrastive_module(model, proj_dim=args.paco_proj_dim, proj_type=args.paco_proj_type)
        if args.distributed and args.sync_bn:
            trainable.projector = convert_sync_batchnorm(trainable.projector)
        if utils.is_primary(args):
            _logger.info(f'Projector {trainable.projector.config}, '
                         f'param count: {sum(p.numel() for p in trainable.projector.parameters())}')

    amp_autocast = suppress
    loss_scaler = None
    if args.amp:
        amp_autocast = partial(torch.autocast, device_type=device.type, dtype=amp_dtype)
        if device.type == 'cuda' and amp_dtype == torch.float16:
            loss_scaler = utils.NativeScaler(device=device.type)
        _logger.info(f'Mixed precision: autocast {amp_dtype}, grad scaler {"on" if loss_scaler else "off"}.')

    # datasets (long-tail flags and `lt:` lists via timm_paco.data) and the training class counts
    if args.data and not args.data_dir:
        args.data_dir = args.data
    input_img_mode = args.input_img_mode or ('RGB' if data_config['input_size'][0] == 3 else 'L')
    dataset_kwargs = dict(
        class_map=args.class_map, download=args.dataset_download, batch_size=args.batch_size,
        input_img_mode=input_img_mode, input_key=args.input_key, target_key=args.target_key,
        trust_remote_code=args.dataset_trust_remote_code, num_classes=args.num_classes,
    )
    dataset_train = create_paco_dataset(
        args.dataset, root=args.data_dir, split=args.train_split, is_training=True, imb_factor=args.imb_factor,
        imb_seed=args.imb_seed, seed=args.seed, repeats=args.epoch_repeats, num_samples=args.train_num_samples,
        **dataset_kwargs)
    dataset_eval = None
    if args.val_split:
        dataset_eval = create_paco_dataset(
            args.dataset, root=args.data_dir, split=args.val_split, is_training=False,
            num_samples=args.val_num_samples, **dataset_kwargs)

    needs_counts = task_name == 'balanced-softmax' or (
        task_name in ('paco', 'gpaco') and args.paco_logit_adjust != 'off')
    for dataset in (dataset_train, dataset_eval):
        if dataset is not None:
            check_dataset_classes(dataset, args.num_classes)
    class_counts = None
    try:
        class_counts = count_classes(dataset_train, num_classes=args.num_classes)
    except NoLabelsError as e:  # a dataset without readable labels (a stream): fine unless the task needs a prior
        if needs_counts:
            raise
        _logger.warning(f'No training class counts ({e}); class_counts.json is not written.')
    except ValueError as e:
        raise ValueError(f'--num-classes {args.num_classes}: {e}') from e
    logit_adjust = resolve_logit_adjust(task_name, args.paco_logit_adjust, class_counts)

    # loaders
    interpolation = args.train_interpolation
    if args.no_aug or not interpolation:
        interpolation = data_config['interpolation']
    common_loader_kwargs = dict(
        mean=data_config['mean'], std=data_config['std'], pin_memory=args.pin_mem,
        img_dtype=model_dtype or torch.float32, device=device, distributed=args.distributed,
        use_prefetcher=args.prefetcher, num_workers=args.workers, worker_seeding=args.worker_seeding,
        use_multi_epochs_loader=args.use_multi_epochs_loader,
        # workers start each epoch from the epoch's reseeded RNG (``_reseed``), so a resumed run augments exactly
        # as an uninterrupted one; persistent workers would carry their RNG state over from earlier epochs
        persistent_workers=False,
    )
    mixup_fn = None
    mixup_active = args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax is not None
    if timm_views:
        collate_fn = None
        if mixup_active:
            mixup_args = dict(
                mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                label_smoothing=args.smoothing, num_classes=args.num_classes)
            if args.prefetcher:
                collate_fn = FastCollateMixup(**mixup_args)
            else:
                mixup_fn = Mixup(**mixup_args)
        loader_train = create_loader(
            dataset_train, input_size=data_config['input_size'], batch_size=args.batch_size, is_training=True,
            no_aug=args.no_aug, re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
            re_split=args.resplit, train_crop_mode=args.train_crop_mode, scale=args.scale, ratio=args.ratio,
            hflip=args.hflip, vflip=args.vflip, color_jitter=args.color_jitter,
            color_jitter_prob=args.color_jitter_prob, grayscale_prob=args.grayscale_prob,
            gaussian_blur_prob=args.gaussian_blur_prob, auto_augment=args.aa, num_aug_repeats=args.aug_repeats,
            interpolation=interpolation, collate_fn=collate_fn, input_size_choices=args.train_img_sizes,
            batch_size_choices=args.train_batch_sizes, batch_choice_weights=args.train_size_probs,
            batch_choice_seed=args.seed, batch_choice_schedule=args.train_size_schedule,
            batch_schedule_epochs=args.epochs if args.train_size_schedule == 'progressive' else None,
            batch_schedule_spread=args.train_size_schedule_spread,
            batch_schedule_random_mix=args.train_size_random_mix, num_batches=args.train_batches_per_epoch,
            **common_loader_kwargs)
    else:
        loader_train = create_view_loader(
            dataset_train, _view_transform(args, recipe, data_config, interpolation), args.batch_size,
            is_training=True, channels=data_config['input_size'][0],
            re_prob=args.reprob if args.prefetcher and not args.no_aug else 0.,  # else in the view transform
            re_mode=args.remode, re_count=args.recount, re_num_splits=num_views if args.resplit else 0,
            **common_loader_kwargs)
    if len(loader_train) == 0:  # the training loader drops the last partial batch
        parser.error(f'-b/--batch-size {args.batch_size}: {len(dataset_train)} training samples over '
                     f'{args.world_size} process(es) give no full batch; use a smaller batch size')
    batch_size_reference = float(args.batch_size)
    if args.train_img_sizes is not None:
        batch_size_reference = loader_train.batch_sampler.average_batch_size

    if not args.lr:
        global_batch_size = batch_size_reference * args.world_size * args.grad_accum_steps
        batch_ratio = global_batch_size / args.lr_base_size
        if not args.lr_base_scale:
            args.lr_base_scale = 'sqrt' if any(o in args.opt.lower() for o in ('ada', 'lamb')) else 'linear'
        if args.lr_base_scale == 'sqrt':
            batch_ratio = batch_ratio ** 0.5
        args.lr = args.lr_base * batch_ratio
        _logger.info(f'Learning rate {args.lr} from --lr-base {args.lr_base} and global batch {global_batch_size:g}.')

    loader_eval = None
    if dataset_eval is not None:
        loader_eval = create_loader(
            dataset_eval, input_size=data_config['input_size'],
            batch_size=args.validation_batch_size or args.batch_size, is_training=False,
            interpolation=data_config['interpolation'], crop_pct=data_config['crop_pct'], **common_loader_kwargs)

    # the task
    task_kwargs = dict(device=device, dtype=model_dtype, verbose=utils.is_primary(args))
    if mixup_active or args.bce_loss:
        criterion = create_classification_loss(
            loss_type='bce' if args.bce_loss else None, smoothing=args.smoothing, soft_targets=mixup_active,
            pos_weight=args.bce_pos_weight, bce_target_thresh=args.bce_target_thresh, bce_sum=args.bce_sum)
        task = ClassificationTask(model, criterion=criterion, **task_kwargs)
    else:
        task = create_task(
            task_name, trainable, num_views=num_views, class_counts=class_counts,
            logit_adjust='on' if logit_adjust else 'off', prior_tau=args.prior_tau, smoothing=args.smoothing,
            alpha=args.paco_alpha, beta=args.paco_beta, gamma=args.paco_gamma, temperature=args.paco_temperature,
            queue_size=_queue_size(args, task_name), momentum=args.paco_momentum, **task_kwargs)
        if load_initial_projector(task, initial_projector, args.initial_checkpoint):
            _logger.info(f'Projector weights from --initial-checkpoint {args.initial_checkpoint}.')
    if utils.is_primary(args):
        _logger.info(f'Task {type(task).__name__}: {task.criterion}')

    optimizer = create_optimizer_v2(task.get_trainable_module(), **optimizer_kwargs(cfg=args), **args.opt_kwargs)

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

    # output folder, checkpoints, class counts
    eval_metric = args.eval_metric if loader_eval is not None else 'loss'
    decreasing_metric = eval_metric == 'loss'
    saver = None
    output_dir = None
    if utils.is_primary(args):
        exp_name = args.experiment or '-'.join([
            datetime.now().strftime('%Y%m%d-%H%M%S'), safe_model_name(args.model), str(data_config['input_size'][-1])])
        output_dir = utils.get_outdir(args.output if args.output else './output/train', exp_name)
        saver = utils.CheckpointSaver(
            model=task.get_trainable_module(), optimizer=optimizer, args=args, amp_scaler=loss_scaler,
            checkpoint_dir=output_dir, recovery_dir=output_dir, decreasing=decreasing_metric,
            max_history=args.checkpoint_hist, task=task)
        if args.resume and os.path.dirname(os.path.abspath(args.resume)) == os.path.abspath(output_dir):
            saver.load_state_dict_from_checkpoint(args.resume)
        with open(os.path.join(output_dir, 'args.yaml'), 'w') as f:
            f.write(args_text)
        if class_counts is not None:
            save_class_counts(class_counts, output_dir)
        if args.log_wandb:
            _init_wandb(args, exp_name)

    updates_per_epoch = (len(loader_train) + args.grad_accum_steps - 1) // args.grad_accum_steps
    lr_scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(args, decreasing_metric=decreasing_metric), updates_per_epoch=updates_per_epoch)
    start_epoch = args.start_epoch if args.start_epoch is not None else (resume_epoch or 0)
    if lr_scheduler is not None and start_epoch > 0:
        if args.sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates_per_epoch)
        else:
            lr_scheduler.step(start_epoch)
    _logger.info(f'Scheduled epochs: {num_epochs}, {updates_per_epoch} updates per epoch.')
    if output_dir is not None:  # a run resumed into its own folder: its summary rows from start_epoch on go
        utils.trim_summary(os.path.join(output_dir, 'summary.csv'), start_epoch)

    best_metric, best_epoch = None, None
    results = []
    try:
        for epoch in range(start_epoch, num_epochs):
            _reseed(args, epoch)
            _set_loader_epoch(loader_train, epoch)
            train_metrics = train_one_epoch(
                epoch, task, loader_train, optimizer, args, device=device, lr_scheduler=lr_scheduler, saver=saver,
                output_dir=output_dir, amp_autocast=amp_autocast, loss_scaler=loss_scaler, model_dtype=model_dtype,
                mixup_fn=mixup_fn, batch_size_reference=batch_size_reference)

            if args.distributed and args.dist_bn in ('broadcast', 'reduce'):
                utils.distribute_bn(task.get_trainable_module(), args.world_size, args.dist_bn == 'reduce')

            last_epoch = epoch + 1 == num_epochs
            if (epoch + 1) % args.val_interval != 0 and not last_epoch:
                if lr_scheduler is not None:
                    lr_scheduler.step(epoch + 1, metric=None)
                continue

            eval_metrics = None
            if loader_eval is not None:
                eval_metrics = validate(task, loader_eval, args, device, amp_autocast, model_dtype)
                if task.has_ema() and not args.model_ema_force_cpu:
                    if args.distributed and args.dist_bn in ('broadcast', 'reduce'):
                        utils.distribute_bn(
                            task.get_trainable_module(ema=True), args.world_size, args.dist_bn == 'reduce')
                    eval_metrics = validate(task, loader_eval, args, device, amp_autocast, model_dtype, ema=True)

            if output_dir is not None:
                lrs = [group['lr'] for group in optimizer.param_groups]
                utils.update_summary(
                    epoch, train_metrics, eval_metrics, filename=os.path.join(output_dir, 'summary.csv'),
                    lr=sum(lrs) / len(lrs), log_wandb=args.log_wandb)
            latest_metric = (eval_metrics or train_metrics)[eval_metric]
            if saver is not None:
                best_metric, best_epoch = saver.save_checkpoint(epoch, metric=latest_metric)
            if lr_scheduler is not None:
                lr_scheduler.step(epoch + 1, latest_metric)
            results.append({'epoch': epoch, 'train': train_metrics,
                            **({'validation': eval_metrics} if eval_metrics else {})})
    except KeyboardInterrupt:
        pass

    if args.distributed:
        torch.distributed.destroy_process_group()
    if best_metric is not None:
        _logger.info(f'*** Best metric: {best_metric} (epoch {best_epoch})')
    if utils.is_primary(args):
        if args.push_to_hub and output_dir is not None:
            _push_to_hub(args, output_dir)
        print(f'--result\n{json.dumps(results[-10:], indent=4)}')
    return results


def _init_wandb(args, exp_name):
    try:
        import wandb
    except ImportError:
        _logger.warning('--log-wandb: wandb is not installed (pip install wandb); metrics are not sent to wandb.')
        args.log_wandb = False
        return
    wandb.init(project=args.wandb_project, name=exp_name, config=args, tags=args.wandb_tags,
               resume='must' if args.wandb_resume_id else None, id=args.wandb_resume_id or None)


def _push_to_hub(args, output_dir):
    """Upload the best (else last) checkpoint with ``timm_paco.hub.push_checkpoint``.

    With ``--model-ema`` (evaluated, not ``--model-ema-force-cpu``) the EMA weights go up, as they are the ones
    the best checkpoint was chosen by. The export is the stock timm form (``resnet50`` for ``paco_resnet50``), which
    plain timm loads, with the training projector beside it in ``projector.safetensors``.
    """
    from timm_paco.hub import push_checkpoint
    checkpoint = os.path.join(output_dir, 'model_best.pth.tar')
    if not os.path.isfile(checkpoint):
        checkpoint = os.path.join(output_dir, 'last.pth.tar')
    ema = args.model_ema and not args.model_ema_force_cpu  # the EMA was evaluated and chose the best checkpoint
    commit = push_checkpoint(checkpoint, args.push_to_hub, model_name=args.model, form='timm', ema=ema,
                             private=args.hub_private, revision=args.hub_revision)
    _logger.info(f'Pushed {checkpoint} to the Hub: {getattr(commit, "commit_url", commit)}')


def train_one_epoch(
        epoch, task, loader, optimizer, args, device, lr_scheduler=None, saver=None, output_dir=None,
        amp_autocast=suppress, loss_scaler=None, model_dtype=None, mixup_fn=None, batch_size_reference=None,
):
    """One epoch of task steps; returns ``{'loss', <named loss parts>}`` averaged over the epoch (and ranks)."""
    if args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
        if args.prefetcher and getattr(loader, 'mixup_enabled', False):
            loader.mixup_enabled = False
        elif mixup_fn is not None:
            mixup_fn.mixup_enabled = False

    second_order = getattr(optimizer, 'is_second_order', False)
    meters = OrderedDict(loss=utils.AverageMeter())
    update_time_m, data_time_m = utils.AverageMeter(), utils.AverageMeter()
    task.get_trainable_module().train()

    num_batches = len(loader)
    accum = args.grad_accum_steps
    updates_per_epoch = (num_batches + accum - 1) // accum
    last_group_start = num_batches - num_batches % accum
    num_updates = epoch * updates_per_epoch
    scheduled_sizes = args.train_img_sizes is not None
    clip_parameters = None

    optimizer.zero_grad()
    update_sample_count = 0
    data_start = update_start = time.time()
    for batch_idx, (input, target) in enumerate(loader):
        last_batch = batch_idx == num_batches - 1
        need_update = last_batch or (batch_idx + 1) % accum == 0
        update_idx = batch_idx // accum
        accum_steps = num_batches % accum if batch_idx >= last_group_start else accum
        if not args.prefetcher:
            input, target = input.to(device=device, dtype=model_dtype), target.to(device=device)
            if mixup_fn is not None:
                input, target = mixup_fn(input, target)
        if args.channels_last:
            input = input.contiguous(memory_format=torch.channels_last)
        batch_size = target.shape[0]
        data_time_m.update(accum_steps * (time.time() - data_start))

        loss_scale = 1.0 / accum_steps
        if scheduled_sizes and args.variable_batch_loss_scale != 'none':
            ratio = batch_size / batch_size_reference
            loss_scale *= ratio ** 0.5 if args.variable_batch_loss_scale == 'sqrt' else ratio

        sync = task.no_sync() if args.distributed and not need_update else suppress()
        with sync:
            with amp_autocast():
                result = task(input, target)
            loss = result['loss']
            if args.clip_grad is not None and clip_parameters is None:
                clip_parameters = list(task.get_clip_parameters(exclude_head='agc' in args.clip_mode))
            if loss_scaler is not None:
                loss_scaler(
                    loss * loss_scale, optimizer, clip_grad=args.clip_grad, clip_mode=args.clip_mode,
                    parameters=clip_parameters, create_graph=second_order, need_update=need_update)
            else:
                (loss * loss_scale).backward(create_graph=second_order)
                if need_update:
                    if args.clip_grad is not None:
                        utils.dispatch_clip_grad(clip_parameters, value=args.clip_grad, mode=args.clip_mode)
                    optimizer.step()

        for name, value in result.items():
            if name == 'loss' or name.startswith('loss_'):
                meters.setdefault(name, utils.AverageMeter()).update(value.item(), batch_size)
        update_sample_count += batch_size * args.world_size
        if not need_update:
            data_start = time.time()
            continue

        num_updates += 1
        optimizer.zero_grad()
        task.update_ema(step=num_updates)
        if args.synchronize_step and device.type == 'cuda':
            torch.cuda.synchronize()
        now = time.time()
        update_time_m.update(now - update_start)
        update_start = now

        if update_idx % args.log_interval == 0 or last_batch:
            lrs = [group['lr'] for group in optimizer.param_groups]
            loss_now, loss_avg = meters['loss'].val, meters['loss'].avg
            if args.distributed:
                loss_now = utils.reduce_tensor(loss.new([loss_now]), args.world_size).item()
                loss_avg = utils.reduce_tensor(loss.new([loss_avg]), args.world_size).item()
            if utils.is_primary(args):
                parts = ''.join(f'  {k[5:].capitalize()}: {m.val:#.3g}' for k, m in meters.items() if k != 'loss')
                _logger.info(
                    f'Train: {epoch} [{update_idx:>4d}/{updates_per_epoch} '
                    f'({100. * (update_idx + 1) / updates_per_epoch:>3.0f}%)]  '
                    f'Loss: {loss_now:#.3g} ({loss_avg:#.3g}){parts}  '
                    f'Time: {update_time_m.val:.3f}s, {update_sample_count / update_time_m.val:>7.2f}/s  '
                    f'({update_time_m.avg:.3f}s, {update_sample_count / update_time_m.avg:>7.2f}/s)  '
                    f'LR: {sum(lrs) / len(lrs):.3e}  '
                    f'Data: {data_time_m.val:.3f} ({data_time_m.avg:.3f})')
                if args.save_images and output_dir:
                    torchvision.utils.save_image(
                        input, os.path.join(output_dir, f'train-batch-{batch_idx}.jpg'), padding=0, normalize=True)

        if saver is not None and args.recovery_interval and (update_idx + 1) % args.recovery_interval == 0:
            saver.save_recovery(epoch, batch_idx=update_idx)
        if lr_scheduler is not None:
            lr_scheduler.step_update(num_updates=num_updates, metric=meters['loss'].avg)
        update_sample_count = 0
        data_start = time.time()

    if hasattr(optimizer, 'sync_lookahead'):
        optimizer.sync_lookahead()
    metrics = OrderedDict()
    for name, meter in meters.items():
        value = meter.avg
        if args.distributed:
            value = torch.tensor([value], device=device, dtype=torch.float64)
            value = utils.reduce_tensor(value, args.world_size).item()
        metrics[name] = value
    return metrics


def validate(task, loader, args, device, amp_autocast=suppress, model_dtype=None, ema=False):
    """Top-1 / top-5 / CE loss of the (EMA) eval model with timm's evaluator."""
    model = task.get_eval_model(ema=ema)
    model.eval()
    evaluator = task.create_evaluator(max_samples=evaluation_sample_limit(loader))
    batch_time_m = utils.AverageMeter()
    last_idx = len(loader) - 1
    end = time.time()
    with torch.inference_mode():
        for batch_idx, (input, target) in enumerate(loader):
            if not args.prefetcher:
                input, target = input.to(device=device, dtype=model_dtype), target.to(device=device)
            if args.channels_last:
                input = input.contiguous(memory_format=torch.channels_last)
            with amp_autocast():
                output = model(input)
            if isinstance(output, (tuple, list)):
                output = output[0]
            evaluator.update(output, target)
            batch_time_m.update(time.time() - end)
            end = time.time()
            if utils.is_primary(args) and (batch_idx == last_idx or batch_idx % args.log_interval == 0):
                running = evaluator.summary()
                _logger.info(
                    f'Test{" (EMA)" if ema else ""}: [{batch_idx:>4d}/{last_idx}]  '
                    f'Time: {batch_time_m.val:.3f} ({batch_time_m.avg:.3f})  '
                    f'Loss: {running["loss"]:>6.3f}  Acc@1: {running["top1"]:>7.3f}  Acc@5: {running["top5"]:>7.3f}')
    return evaluator.compute(distributed=args.distributed)


if __name__ == '__main__':
    main()
