"""validate.py's data: the evaluated split (timm's datasets, ``lt:`` lists, OOD folders), its loader, the
scored label subset (``--valid-labels``) and the training class counts of the long-tail metrics."""
import os
from typing import List

import torch
from timm.data import create_loader

from timm_paco.data import LT_PREFIX, create_paco_dataset, load_class_counts
from timm_paco.data.class_counts import CLASS_COUNTS_FILE

__all__ = ['resolve_class_counts', 'read_valid_labels', 'create_eval_dataset', 'create_eval_loader']


def resolve_class_counts(args, checkpoints):
    """Training class counts [C] or None; raises when asked for (--class-counts / --lt-metrics) but missing."""
    if args.class_counts:
        return load_class_counts(args.class_counts)
    if checkpoints:
        beside = os.path.join(os.path.dirname(checkpoints[0]) or '.', CLASS_COUNTS_FILE)
        if os.path.isfile(beside):
            return load_class_counts(beside)
        if args.lt_metrics:
            raise FileNotFoundError(
                f'--lt-metrics: class counts file {beside} (beside --checkpoint) not found; pass --class-counts PATH')
    elif args.lt_metrics:
        raise FileNotFoundError('--lt-metrics: no --class-counts PATH given and no --checkpoint to look beside')
    return None


def read_valid_labels(path: str, num_classes: int) -> List[int]:
    """The model's class indices scored, one int per line of ``path`` (``--valid-labels``), each in
    ``[0, num_classes)``; blank lines are skipped."""
    labels, first_line = [], {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                label = int(line)
            except ValueError:
                raise ValueError(f'--valid-labels {path}:{line_no}: expected a class index, got {line.strip()!r}')
            if not 0 <= label < num_classes:
                raise ValueError(f'--valid-labels {path}:{line_no}: class {label} is outside the model\'s '
                                 f'[0, {num_classes})')
            if label in first_line:
                raise ValueError(f'--valid-labels {path}:{line_no}: class {label} is listed again (line '
                                 f'{first_line[label]})')
            first_line[label] = line_no
            labels.append(label)
    if not labels:
        raise ValueError(f'--valid-labels {path}: no class indices')
    return labels


def create_eval_dataset(args, root, data_config, class_map=None, num_classes=None, split_arg='--split'):
    """The ``args.split`` of ``--dataset`` under ``root`` (images read in the data config's channels), the split
    named by the flag ``split_arg`` in messages; raises on a missing root or an empty split."""
    if args.input_img_mode is None:
        input_img_mode = 'RGB' if data_config['input_size'][0] == 3 else 'L'
    else:
        input_img_mode = args.input_img_mode
    split_list = args.dataset.startswith(LT_PREFIX)
    if (split_list or not args.dataset) and not root:
        raise ValueError('--data-dir: an image root is required')
    if root and not os.path.exists(root) and not args.dataset_download:
        raise FileNotFoundError(f'--data-dir: image root {root} does not exist')
    if split_list:
        dataset = create_paco_dataset(
            args.dataset, root=root, split=args.split, num_classes=num_classes, input_img_mode=input_img_mode,
            split_arg=split_arg, skip_unreadable=args.skip_unreadable_images, scan_workers=args.workers)
    else:
        dataset = create_paco_dataset(
            args.dataset,
            root=root,
            split=args.split,
            download=args.dataset_download,
            input_img_mode=input_img_mode,
            load_bytes=args.tf_preprocessing,
            class_map=class_map if class_map is not None else args.class_map,
            num_samples=args.num_samples,
            input_key=args.input_key,
            target_key=args.target_key,
            trust_remote_code=args.dataset_trust_remote_code,
            seed=args.seed,
            split_arg=split_arg,
            skip_unreadable=args.skip_unreadable_images,
            scan_workers=args.workers,
        )
    if hasattr(dataset, '__len__') and len(dataset) == 0:
        raise ValueError(f'{split_arg} {args.split}: no images found for it under {root}')
    return dataset


def create_eval_loader(args, dataset, data_config, crop_pct, device, model_dtype, model):
    """timm's evaluation loader (or its NaFlex loader, ``--naflex-loader``) of ``dataset``."""
    common = dict(
        batch_size=args.batch_size,
        use_prefetcher=args.prefetcher,
        interpolation=data_config['interpolation'],
        mean=data_config['mean'],
        std=data_config['std'],
        num_workers=args.workers,
        crop_pct=crop_pct,
        crop_mode=data_config['crop_mode'],
        crop_border_pixels=args.crop_border_pixels,
        pin_memory=args.pin_mem,
        device=device,
        img_dtype=model_dtype or torch.float32,
    )
    if args.naflex_loader:
        from timm.data import create_naflex_loader
        patch_size = getattr(getattr(model, 'embeds', None), 'patch_size', None)
        return create_naflex_loader(
            dataset, patch_size=patch_size or (16, 16), max_seq_len=args.naflex_max_seq_len, **common)
    return create_loader(
        dataset, input_size=data_config['input_size'], tf_preprocessing=args.tf_preprocessing, **common)
