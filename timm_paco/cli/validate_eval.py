"""validate.py's evaluation passes: one pass of a model over a loader into a ``LongTailMeter`` (with the
post-hoc logit-adjustment offset, a label subset, ReaL labels, kept logits), and ImageNet-C's 75 passes into
corruption errors."""
import logging
import time

import torch
import torch.nn as nn
from timm.utils import AverageMeter

from timm_paco.cli.validate_data import create_eval_dataset, create_eval_loader
from timm_paco.data.metrics import LongTailMeter
from timm_paco.data.ood import (
    check_class_folders, corruption_errors, imagenet_c_folders, ood_class_map, parse_corruptions,
)
from timm_paco.eval import logit_offset

__all__ = ['logit_adjust_offset', 'evaluate', 'evaluate_imagenet_c']

_logger = logging.getLogger('validate')


def logit_adjust_offset(args, class_counts, num_classes, device):
    """``−τ · log p`` [num_classes] on ``device`` for ``--logit-adjust τ``; None when τ is 0."""
    if not args.logit_adjust:
        return None
    if len(class_counts) != num_classes:
        raise ValueError(f'--logit-adjust: the class counts cover {len(class_counts)} classes, '
                         f'but the evaluation scores {num_classes}')
    return logit_offset(class_counts, args.logit_adjust).to(device)


@torch.inference_mode()
def evaluate(args, model, loader, num_classes, device, model_dtype, amp_autocast,
             valid_labels=None, real_labels=None, tag='Test', offset=None, collect=None, calibration=None):
    """Run ``model`` over ``loader``; returns (LongTailMeter, mean cross-entropy).

    ``offset`` [C] is added to the logits before scoring (post-hoc logit adjustment); ``collect``, a list, gets
    each batch's (logits before the offset, targets) on the CPU; ``calibration`` (a ``CalibrationMeter``) the
    scored logits.
    """
    criterion = nn.CrossEntropyLoss().to(device)
    meter = LongTailMeter(num_classes, average=args.metrics_avg or 'macro')
    losses, batch_time = AverageMeter(), AverageMeter()
    end = time.time()
    for batch_idx, (input, target) in enumerate(loader):
        if args.no_prefetcher:
            target = target.to(device=device)
            input = input.to(device=device, dtype=model_dtype)
        if args.channels_last:
            input = input.contiguous(memory_format=torch.channels_last)
        with amp_autocast():
            output = model(input)
            if valid_labels is not None:
                output = output[:, valid_labels]
            if collect is not None:
                collect.append((output.float().cpu(), target.cpu()))
            if offset is not None:
                output = output + offset
            loss = criterion(output, target)
        if real_labels is not None:
            real_labels.add_result(output)
        meter.update(output, target)
        if calibration is not None:
            calibration.update(output, target)
        losses.update(loss.item(), input.shape[0])
        batch_time.update(time.time() - end)
        end = time.time()
        if batch_idx % args.log_freq == 0:
            acc = meter.topk_accuracy()
            _logger.info(
                f'{tag}: [{batch_idx:>4d}/{len(loader)}]  Time: {batch_time.avg:.3f}s  '
                f'Loss: {losses.avg:>6.4f}  Acc@1: {acc[1]:>7.3f}  Acc@5: {acc[5]:>7.3f}')
    return meter, losses.avg


def evaluate_imagenet_c(args, model, data_config, crop_pct, device, model_dtype, amp_autocast, num_classes,
                        offset=None):
    """ImageNet-C under ``--data-dir``: top-1 of each corruption / severity, CE per corruption and mCE (AlexNet-
    normalised; relative CE / mCE with ``--clean-error``), in %."""
    if num_classes != 1000:
        raise ValueError(f'--ood imagenet-c needs a 1000-class ImageNet model, {args.model} has {num_classes}')
    corruptions = parse_corruptions(args.ood_corruptions)
    class_map = ood_class_map('imagenet-c')
    errors, top1 = {c: [] for c in corruptions}, {}
    for c, s, folder in imagenet_c_folders(args.data_dir, corruptions):
        check_class_folders(folder, class_map, what=f'ImageNet-C {c}/{s}')
        dataset = create_eval_dataset(args, folder, data_config, class_map=class_map)
        loader = create_eval_loader(args, dataset, data_config, crop_pct, device, model_dtype, model)
        meter, _ = evaluate(args, model, loader, num_classes, device, model_dtype, amp_autocast, tag=f'{c}/{s}',
                            offset=offset)
        acc = meter.topk_accuracy()[1]
        errors[c].append(1. - acc / 100.)
        top1[f'{c}_s{s}_top1'] = round(acc, 4)
    clean = args.clean_error / 100. if args.clean_error is not None else None
    ce = corruption_errors(errors, clean_error=clean)
    out = {'mce': round(100 * ce['mce'], 4)}
    if clean is not None:
        out['relative_mce'] = round(100 * ce['relative_mce'], 4)
    for c in corruptions:
        out[f'{c}_ce'] = round(100 * ce['ce'][c], 4)
        if clean is not None:
            out[f'{c}_relative_ce'] = round(100 * ce['relative_ce'][c], 4)
    out.update(top1)
    return out
