"""train.py's data: the training and validation datasets (timm's, with the long-tail flags and ``lt:`` lists),
the training class counts, and the loaders (timm's single-view loader, or the V-view loader of
``timm_paco.data``)."""
import logging
import os
from typing import Dict, List, Optional, Tuple

import torch
from timm.data import FastCollateMixup, Mixup, create_loader, create_transform

from timm_paco.cli.train_loss import read_class_stats
from timm_paco.cli.train_views import ViewPlan, create_train_view_transform
from timm_paco.cli.usage import UsageError
from timm_paco.data import (
    LT_PREFIX, ClassAwareSampler, MultiViewTransform, NoLabelsError, check_dataset_classes, count_classes,
    create_paco_dataset, create_view_loader, dataset_targets,
)
from timm_paco.data.splits import SplitNotFoundError, split_source
from timm_paco.methods import Method

__all__ = ['mixup_active', 'create_train_datasets', 'create_train_loader', 'create_eval_loader']

_logger = logging.getLogger('train')


def _dataset_kwargs(args, input_size) -> Dict:
    input_img_mode = args.input_img_mode or ('RGB' if input_size[0] == 3 else 'L')
    return dict(
        class_map=args.class_map, download=args.dataset_download, batch_size=args.batch_size,
        input_img_mode=input_img_mode, input_key=args.input_key, target_key=args.target_key,
        trust_remote_code=args.dataset_trust_remote_code, num_classes=args.num_classes,
        skip_unreadable=args.skip_unreadable_images, scan_workers=args.workers,
    )


def _warn_empty_classes(counts: List[int]) -> None:
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:
        shown = ', '.join(map(str, empty[:10])) + (f' and {len(empty) - 10} more' if len(empty) > 10 else '')
        _logger.warning(f'Class{"es" if len(empty) > 1 else ""} {shown} of {len(counts)} ha'
                        f'{"ve" if len(empty) > 1 else "s"} no training images: the model cannot learn '
                        f'{"them" if len(empty) > 1 else "it"} (check --num-classes, --imb-factor and the data).')


def _class_counts(args, dataset, method: Method) -> Optional[List[int]]:
    """Training images per class (a warning names the classes without any), from ``--class-stats`` when given; None
    for a dataset without readable labels unless ``method`` needs them."""
    if args.class_stats:
        counts = read_class_stats(args.class_stats, args.num_classes)
        _warn_empty_classes(counts)
        return counts
    try:
        counts = count_classes(dataset, num_classes=args.num_classes)
    except NoLabelsError as e:  # a dataset without readable labels (a stream): fine unless the task needs a prior
        if method.needs_class_counts(args.paco_logit_adjust):
            raise
        _logger.warning(f'No training class counts ({e}); class_counts.json is not written.')
        return None
    except ValueError as e:
        raise ValueError(f'--num-classes {args.num_classes}: {e}') from e
    _warn_empty_classes(counts)
    return counts


def check_splits_differ(args) -> None:
    """UsageError when ``--val-split`` is not found, or reads the images ``--train-split`` reads (a root of class
    folders only serves every split): validation would score the training images."""
    if not args.val_split or args.dataset.startswith(LT_PREFIX):
        return
    try:
        train = split_source(args.dataset, args.data_dir, args.train_split, '--train-split')
        val = split_source(args.dataset, args.data_dir, args.val_split, '--val-split')
    except SplitNotFoundError as e:
        raise UsageError(f"{e} (or --val-split '' to train without validation)") from None
    if train is not None and train == val:
        raise UsageError(
            f"--val-split {args.val_split}: it reads the training images ({train}), so validation would score "
            f"images the model trains on; give the dataset a {args.val_split} split (a folder "
            f"{os.path.join(args.data_dir or '', args.val_split)}), name another split, or pass --val-split '' "
            f"to train without validation")


def create_train_datasets(args, method: Method, data_config) -> Tuple:
    """(training dataset, validation dataset or None without ``--val-split``, training class counts or None)."""
    check_splits_differ(args)
    kwargs = _dataset_kwargs(args, data_config['input_size'])
    try:
        dataset_train = create_paco_dataset(
            args.dataset, root=args.data_dir, split=args.train_split, is_training=True, imb_factor=args.imb_factor,
            imb_seed=args.imb_seed, seed=args.seed, repeats=args.epoch_repeats, num_samples=args.train_num_samples,
            split_arg='--train-split', **kwargs)
    except SplitNotFoundError as e:
        raise UsageError(str(e)) from None
    dataset_eval = None
    if args.val_split:
        dataset_eval = create_paco_dataset(
            args.dataset, root=args.data_dir, split=args.val_split, is_training=False,
            num_samples=args.val_num_samples, split_arg='--val-split', **kwargs)
    for dataset in (dataset_train, dataset_eval):
        if dataset is not None:
            check_dataset_classes(dataset, args.num_classes)
    return dataset_train, dataset_eval, _class_counts(args, dataset_train, method)


def _common_loader_kwargs(args, data_config, device, model_dtype) -> Dict:
    return dict(
        mean=data_config['mean'], std=data_config['std'], pin_memory=args.pin_mem,
        img_dtype=model_dtype or torch.float32, device=device, distributed=args.distributed,
        use_prefetcher=args.prefetcher, num_workers=args.workers, worker_seeding=args.worker_seeding,
        use_multi_epochs_loader=args.use_multi_epochs_loader,
        # workers start each epoch from the epoch's reseeded RNG (train_loop.reseed), so a resumed run augments
        # exactly as an uninterrupted one; persistent workers would carry their RNG state over from earlier epochs
        persistent_workers=False,
    )


def mixup_active(args) -> bool:
    return args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax is not None


def _timm_loader(args, dataset, data_config, interpolation, common):
    """timm's single-view training loader with its mixup / cutmix; returns (loader, mixup_fn or None)."""
    collate_fn, mixup_fn = None, None
    if mixup_active(args):
        mixup_args = dict(
            mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
            prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
            label_smoothing=args.smoothing, num_classes=args.num_classes)
        if args.prefetcher:
            collate_fn = FastCollateMixup(**mixup_args)
        else:
            mixup_fn = Mixup(**mixup_args)
    loader = create_loader(
        dataset, input_size=data_config['input_size'], batch_size=args.batch_size, is_training=True,
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
        **common)
    return loader, mixup_fn


def _class_aware_sampler(args, dataset) -> Optional[ClassAwareSampler]:
    """``--sampler``'s sampler (None for ``instance``: the loader's own shuffle); UsageError when the class of the
    training images cannot be known without decoding them."""
    if args.sampler == 'instance':
        return None
    try:
        targets = dataset_targets(dataset)
    except NoLabelsError as e:
        raise UsageError(f'--sampler {args.sampler} needs the class of every training image, which this dataset does '
                         f'not expose ({e}); use --sampler instance or a folder / list dataset') from None
    return ClassAwareSampler(targets, args.sampler, num_classes=args.num_classes, epochs=args.epochs,
                             seed=args.seed)


def _timm_train_transform(args, data_config, interpolation):
    """The single-view training transform timm's ``create_loader`` builds from the same flags."""
    return create_transform(
        data_config['input_size'], is_training=True, no_aug=args.no_aug, scale=args.scale, ratio=args.ratio,
        hflip=args.hflip, vflip=args.vflip, color_jitter=args.color_jitter, color_jitter_prob=args.color_jitter_prob,
        grayscale_prob=args.grayscale_prob, gaussian_blur_prob=args.gaussian_blur_prob, auto_augment=args.aa,
        interpolation=interpolation, mean=data_config['mean'], std=data_config['std'],
        train_crop_mode=args.train_crop_mode, re_prob=args.reprob, re_mode=args.remode, re_count=args.recount,
        use_prefetcher=args.prefetcher)


def create_train_loader(args, dataset, data_config, views: ViewPlan, device, model_dtype):
    """The training loader of ``views`` and ``--sampler``; returns (loader, mixup_fn or None: the batch mixing done
    after loading). Raises UsageError when the dataset gives no full batch."""
    interpolation = args.train_interpolation
    if args.no_aug or not interpolation:
        interpolation = data_config['interpolation']
    common = _common_loader_kwargs(args, data_config, device, model_dtype)
    sampler = _class_aware_sampler(args, dataset)
    if views.timm_views and sampler is None:
        loader, mixup_fn = _timm_loader(args, dataset, data_config, interpolation, common)
    else:
        if views.timm_views:  # timm's own transform, in the loader that takes a sampler
            transform = MultiViewTransform([_timm_train_transform(args, data_config, interpolation)])
        else:
            transform = create_train_view_transform(args, views, data_config, interpolation)
        loader, mixup_fn = create_view_loader(
            dataset, transform, args.batch_size, is_training=True, channels=data_config['input_size'][0],
            re_prob=args.reprob if args.prefetcher and not args.no_aug else 0.,  # else in the view transform
            re_mode=args.remode, re_count=args.recount, re_num_splits=views.num_views if args.resplit else 0,
            sampler=sampler, **common), None
    if len(loader) == 0:  # the training loader drops the last partial batch
        raise UsageError(f'-b/--batch-size {args.batch_size}: {len(dataset)} training samples over '
                         f'{args.world_size} process(es) give no full batch; use a smaller batch size')
    return loader, mixup_fn


def create_eval_loader(args, dataset, data_config, device, model_dtype):
    """timm's evaluation loader (centre crop of the data config); None without a validation dataset."""
    if dataset is None:
        return None
    return create_loader(
        dataset, input_size=data_config['input_size'],
        batch_size=args.validation_batch_size or args.batch_size, is_training=False,
        interpolation=data_config['interpolation'], crop_pct=data_config['crop_pct'],
        **_common_loader_kwargs(args, data_config, device, model_dtype))
