#!/usr/bin/env python3
"""Validate timm and PaCo models: timm's validate.py flags plus long-tail and out-of-distribution metrics.

Every flag of timm's validate.py keeps its meaning (``--data-dir --dataset --split --model --checkpoint -b
--img-size --amp --results-file …``, bulk validation of a checkpoint folder / model list / wildcard).
Added:

* Long-tail metrics: ``--class-counts PATH`` (training images per class, ``class_counts.json``; by default the
  file beside ``--checkpoint`` when it exists), ``--lt-metrics`` (require them), ``--many-shot-thr 100
  --few-shot-thr 20`` (many: count > many, few: count < few, medium: in between inclusive). Reports
  ``many_acc / medium_acc / few_acc``, writes a per-class CSV (``--per-class-file``) and a PNG of per-class
  accuracy against training count (``--per-class-plot``); both default to ``<results-file stem>_per_class.*``
  (``<stem>_<checkpoint or model>_per_class.*`` for each evaluation of a bulk run; the default plot is skipped
  with a warning when matplotlib is missing). A bulk run records a model or checkpoint that fails with its
  ``error`` and goes on.
* ``--logit-adjust TAU``: post-hoc logit adjustment, scoring ``logits − TAU · log p`` with ``p`` the class prior
  of those class counts; ``--logits-file F``: the logits [N, C] (before the adjustment) and targets [N] as
  safetensors, for sweeps without re-running the model (``timm_paco.eval.logit_adjust``).
* ``--checkpoint a.pth.tar,b.pth.tar``: ensemble of the checkpoints, logits averaged (not softmax).
* ``--ood imagenet-r|imagenet-a|imagenet-sketch|imagenet-c`` with ``--data-dir`` the dataset as shipped
  (``ROOT/<wnid>/*`` folders; ImageNet-C ``ROOT/<corruption>/<severity>/<wnid>/*``). R / A score the 200
  matching logits of a 1000-class model. ImageNet-C evaluates all 15 corruptions x 5 severities (a subset only
  when named by ``--ood-corruptions``) and reports CE per corruption and mCE, normalised by AlexNet, and with
  ``--clean-error`` (the model's clean top-1 error in %) relative CE / relative mCE.
* Checkpoints of any layout (train.py's plain ``state_dict``, the earlier ``backbone.* / projector.*``, the seeds')
  load into the registered name (``paco_resnet32``) or the stock architecture (``resnet32_cifar``); the projector
  is not needed.
"""
import argparse
import glob
import json
import logging
import os
import time
from contextlib import suppress
from functools import partial
from typing import List

import torch
import torch.nn as nn

import timm_paco  # noqa: F401  registers the PaCo models
from timm import utils
from timm.data import RealLabelsImagenet, create_loader, resolve_data_config
from timm.layers import apply_test_time_pool, set_fast_norm
from timm.models import is_model, list_models
from timm.utils import AverageMeter, ParseKwargs, natural_key, reparameterize_model, set_jit_fuser
from timm_paco.arg_types import finite_float, non_negative_int, percent, positive_float, positive_int
from timm_paco.data import (
    LT_PREFIX, check_dataset_classes, create_paco_dataset, load_class_counts, match_model_channels,
)
from timm_paco.data.class_counts import CLASS_COUNTS_FILE
from timm_paco.data.metrics import LongTailMeter, long_tail_accuracy, per_class_rows, precision_recall_f1
from timm_paco.data.ood import (
    OOD_DATASETS, check_class_folders, corruption_errors, imagenet_c_folders, ood_class_map,
    parse_corruptions, subset_mask,
)
from timm_paco.eval import (
    EnsembleModel, create_eval_model, logit_offset, save_logits, split_checkpoints, write_per_class_csv, write_results,
)

_logger = logging.getLogger('validate')

parser = argparse.ArgumentParser(description='timm-paco validation: timm validate.py + long-tail / OOD metrics')
# dataset (timm)
parser.add_argument('data', nargs='?', metavar='DIR', const=None, help='dataset root (deprecated, use --data-dir)')
parser.add_argument('--data-dir', metavar='DIR', help='dataset root folder')
parser.add_argument('--dataset', metavar='NAME', default='',
                    help='timm dataset "<type>/<name>", "lt:<split list>", or empty for an image folder')
parser.add_argument('--split', metavar='NAME', default='validation', help='dataset split (default: validation)')
parser.add_argument('--num-samples', default=None, type=positive_int, metavar='N',
                    help='number of samples of the split, for iterable datasets')
parser.add_argument('--dataset-download', action='store_true', default=False,
                    help='download torch/ and tfds/ datasets that support it')
parser.add_argument('--class-map', default='', type=str, metavar='FILENAME', help='class name -> index file')
parser.add_argument('--input-key', default=None, type=str, help='dataset key of the input images')
parser.add_argument('--input-img-mode', default=None, type=str, help='PIL mode images are converted to')
parser.add_argument('--target-key', default=None, type=str, help='dataset key of the targets')
parser.add_argument('--dataset-trust-remote-code', action='store_true', default=False,
                    help='let Hugging Face datasets run code from the dataset repository')
# model (timm)
parser.add_argument('--model', '-m', metavar='NAME', default='dpn92', help='model name (default: dpn92)')
parser.add_argument('--pretrained', dest='pretrained', action='store_true', help='use pretrained weights')
parser.add_argument('-j', '--workers', default=4, type=non_negative_int, metavar='N',
                    help='data loading workers (default: 4)')
parser.add_argument('-b', '--batch-size', default=256, type=positive_int, metavar='N', help='batch size (default: 256)')
parser.add_argument('--img-size', default=None, type=positive_int, metavar='N', help='input image size (model default)')
parser.add_argument('--in-chans', type=positive_int, default=None, metavar='N', help='input channels (default: 3)')
parser.add_argument('--input-size', default=None, nargs=3, type=positive_int, metavar='N',
                    help='input dimensions "C H W" (model default)')
parser.add_argument('--use-train-size', action='store_true', default=False,
                    help='use the train input size even when the pretrained cfg has a test size')
parser.add_argument('--crop-pct', default=None, type=positive_float, metavar='N', help='centre crop fraction')
parser.add_argument('--crop-mode', default=None, type=str, metavar='N',
                    help='crop mode: squash, border or center (model default)')
parser.add_argument('--crop-border-pixels', type=non_negative_int, default=None,
                    help='pixels cropped from the image border')
parser.add_argument('--mean', type=finite_float, nargs='+', default=None, metavar='MEAN', help='override pixel mean')
parser.add_argument('--std', type=positive_float, nargs='+', default=None, metavar='STD', help='override pixel std')
parser.add_argument('--interpolation', default='', type=str, metavar='NAME', help='resize interpolation')
parser.add_argument('--num-classes', type=positive_int, default=None,
                    help='classes of the model (default: the checkpoint\'s, else the model\'s)')
parser.add_argument('--gp', default=None, type=str, metavar='POOL', help='global pool type (model default)')
parser.add_argument('--log-freq', default=10, type=positive_int, metavar='N', help='log every N batches (default: 10)')
parser.add_argument('--checkpoint', default='', type=str, metavar='PATH',
                    help='checkpoint file; a folder validates every *.pth.tar / *.pth in it; '
                         'comma-separated files are evaluated as a logit-averaging ensemble')
parser.add_argument('--num-gpu', type=positive_int, default=1, help='number of GPUs (DataParallel)')
parser.add_argument('--test-pool', dest='test_pool', action='store_true', help='test-time pooling')
parser.add_argument('--no-prefetcher', action='store_true', default=False, help='disable the fast prefetcher')
parser.add_argument('--pin-mem', action='store_true', default=False, help='pin DataLoader memory')
parser.add_argument('--channels-last', action='store_true', default=False, help='channels_last memory layout')
parser.add_argument('--device', default='cuda', type=str, help='device (default: cuda)')
parser.add_argument('--amp', action='store_true', default=False, help='mixed precision inference (torch.autocast)')
parser.add_argument('--amp-dtype', default='float16', type=str, help='AMP dtype: float16 or bfloat16')
parser.add_argument('--model-dtype', default=None, type=str, help='model dtype without AMP (default: float32)')
parser.add_argument('--tf-preprocessing', action='store_true', default=False,
                    help='TensorFlow preprocessing (needs TensorFlow)')
parser.add_argument('--use-ema', dest='use_ema', action='store_true', help='use EMA weights when present')
parser.add_argument('--fuser', default='', type=str, help="jit fuser: '', 'te', 'old' or 'nvfuser'")
parser.add_argument('--fast-norm', default=False, action='store_true', help='experimental fast norm layers')
parser.add_argument('--reparam', default=False, action='store_true', help='reparameterize the model')
parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs)
parser.add_argument('--torchcompile-mode', type=str, default=None, help='torch.compile mode')
scripting_group = parser.add_mutually_exclusive_group()
scripting_group.add_argument('--torchscript', default=False, action='store_true', help='torch.jit.script the model')
scripting_group.add_argument('--torchcompile', nargs='?', type=str, default=None, const='inductor',
                             help='torch.compile with this backend (default: inductor)')
scripting_group.add_argument('--aot-autograd', default=False, action='store_true', help='AOT Autograd (functorch)')
parser.add_argument('--results-file', default='', type=str, metavar='FILENAME', help='summary results file')
parser.add_argument('--results-format', default='csv', type=str, choices=('csv', 'json'),
                    help='results file format: csv or json')
parser.add_argument('--real-labels', default='', type=str, metavar='FILENAME',
                    help='ImageNet "real" labels JSON (ReaL)')
parser.add_argument('--valid-labels', default='', type=str, metavar='FILENAME',
                    help='text file of class indices (one a line) scored for a partial label space')
parser.add_argument('--retry', default=False, action='store_true', help='retry with smaller batches on OOM')
parser.add_argument('--seed', type=non_negative_int, default=42, metavar='S', help='random seed (default: 42)')
parser.add_argument('--metrics-avg', type=str, default=None, choices=['micro', 'macro', 'weighted'],
                    help='also report precision, recall and F1 with this averaging')
parser.add_argument('--naflex-loader', action='store_true', default=False, help='NaFlex loader (NaFlex models)')
parser.add_argument('--naflex-max-seq-len', type=int, default=576, help='NaFlex max sequence length')
# long tail (timm-paco)
group = parser.add_argument_group('Long-tail metrics (timm-paco)')
group.add_argument('--class-counts', default='', type=str, metavar='PATH',
                   help=f'training images per class ({CLASS_COUNTS_FILE}, or its folder); '
                        f'default: {CLASS_COUNTS_FILE} beside --checkpoint when present')
group.add_argument('--lt-metrics', action='store_true', default=False,
                   help='require many/medium/few metrics (error if no class counts are found)')
group.add_argument('--many-shot-thr', type=non_negative_int, default=100,
                   help='many-shot: train count > this (default: 100)')
group.add_argument('--few-shot-thr', type=non_negative_int, default=20,
                   help='few-shot: train count < this (default: 20)')
group.add_argument('--per-class-file', default='', type=str, metavar='FILENAME',
                   help='per-class accuracy CSV (default: <results-file stem>_per_class.csv)')
group.add_argument('--per-class-plot', default='', type=str, metavar='FILENAME',
                   help='per-class accuracy vs training count PNG (default: <results-file stem>_per_class.png)')
group.add_argument('--logit-adjust', default=0.0, type=finite_float, metavar='TAU',
                   help='post-hoc logit adjustment: score logits - TAU * log p, p the training class prior from '
                        'the class counts (Menon et al. 2021; 1 balances a plain-CE model; default: 0, off)')
group.add_argument('--logits-file', default='', type=str, metavar='FILENAME',
                   help='write the logits [N, C] (before --logit-adjust) and targets [N] to this safetensors file')
# out of distribution (timm-paco)
group = parser.add_argument_group('Out-of-distribution sets (timm-paco)')
group.add_argument('--ood', default='', choices=('',) + OOD_DATASETS,
                   help='evaluate --data-dir as this OOD set, read in its shipped folder layout')
group.add_argument('--ood-corruptions', default='', type=str,
                   help='ImageNet-C: comma-separated corruptions to evaluate (default: all 15)')
group.add_argument('--clean-error', default=None, type=percent,
                   help='ImageNet-C: the model\'s clean ImageNet top-1 error in %% (enables relative mCE)')


def _default_side_file(args, suffix: str) -> str:
    """``<results-file stem>[_<model or checkpoint>]_per_class<suffix>``: one file per evaluation in bulk mode."""
    if not args.results_file:
        return ''
    stem = args.results_file
    for ext in ('.csv', '.json'):
        if stem.endswith(ext):
            stem = stem[:-len(ext)]
    tag = getattr(args, 'bulk_tag', '')
    return f'{stem}{"_" + tag if tag else ""}_per_class{suffix}'


def _bulk_tag(model: str, checkpoint: str) -> str:
    """A file-name part naming one evaluation of a bulk run: the checkpoint's stem, else the model name."""
    name = os.path.basename(checkpoint) if checkpoint else model
    for ext in ('.pth.tar', '.pth', '.safetensors'):
        if name.endswith(ext):
            name = name[:-len(ext)]
    return name.replace(os.sep, '_')


def check_run_args(args, bulk: int = 0) -> None:
    """Before anything is evaluated: refuse flags this run would ignore or outputs it would overwrite, and make
    the output files' folders. ``bulk``: the number of evaluations of a bulk run (0: one evaluation)."""
    if args.ood == 'imagenet-c':
        if args.logits_file:
            raise ValueError('--logits-file holds one evaluation; --ood imagenet-c runs 75 of them')
        unused = [flag for flag, value in (
            ('--valid-labels', args.valid_labels), ('--real-labels', args.real_labels),
            ('--lt-metrics', args.lt_metrics), ('--per-class-file', args.per_class_file),
            ('--per-class-plot', args.per_class_plot), ('--metrics-avg', args.metrics_avg)) if value]
        if unused:
            raise ValueError(f'{", ".join(unused)}: --ood imagenet-c reports corruption errors only')
    else:
        unused = [flag for flag, value in (
            ('--ood-corruptions', args.ood_corruptions), ('--clean-error', args.clean_error is not None)) if value]
        if unused:
            raise ValueError(f'{", ".join(unused)}: only --ood imagenet-c uses this')
    if args.few_shot_thr > args.many_shot_thr + 1:
        raise ValueError(f'--few-shot-thr {args.few_shot_thr} must be <= --many-shot-thr + 1 '
                         f'({args.many_shot_thr + 1}): medium-shot classes have --few-shot-thr <= count <= '
                         f'--many-shot-thr')
    if args.real_labels and (args.valid_labels or args.ood in ('imagenet-r', 'imagenet-a')):
        raise ValueError('--real-labels holds 1000-class ImageNet labels; it cannot score the class subset of '
                         '--valid-labels or --ood imagenet-r / imagenet-a')
    if bulk and args.logits_file:
        raise ValueError(f'--logits-file holds one evaluation; bulk validation of {bulk} models would overwrite it')
    if bulk and (args.per_class_file or args.per_class_plot):
        raise ValueError(f'--per-class-file / --per-class-plot name one file; bulk validation of {bulk} models '
                         f'writes <results-file stem>_<checkpoint or model>_per_class.csv / .png instead')
    if args.per_class_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError('--per-class-plot needs matplotlib: pip install matplotlib (or timm-paco[plot])')
    for path in (args.results_file, args.logits_file, args.per_class_file, args.per_class_plot):
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)


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


def logit_adjust_offset(args, class_counts, num_classes, device):
    """``−τ · log p`` [num_classes] on ``device`` for ``--logit-adjust τ``; None when τ is 0."""
    if not args.logit_adjust:
        return None
    if len(class_counts) != num_classes:
        raise ValueError(f'--logit-adjust: the class counts cover {len(class_counts)} classes, '
                         f'but the evaluation scores {num_classes}')
    return logit_offset(class_counts, args.logit_adjust).to(device)


def build_model(args, checkpoints, in_chans):
    create_kwargs = dict(in_chans=in_chans, global_pool=args.gp, scriptable=args.torchscript, **args.model_kwargs)
    if not checkpoints:
        return create_eval_model(
            args.model, pretrained=args.pretrained, num_classes=args.num_classes, **create_kwargs)
    models = []
    for c in checkpoints:
        m = create_eval_model(
            args.model, checkpoint=c, use_ema=args.use_ema, num_classes=args.num_classes,
            pretrained=args.pretrained, **create_kwargs)
        if args.reparam:
            m = reparameterize_model(m)
        models.append(m)
    return models[0] if len(models) == 1 else EnsembleModel(models)


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


def create_eval_dataset(args, root, data_config, class_map=None, num_classes=None):
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
            args.dataset, root=root, split=args.split, num_classes=num_classes, input_img_mode=input_img_mode)
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
        )
    if hasattr(dataset, '__len__') and len(dataset) == 0:
        raise ValueError(f'--data-dir: no images found for split {args.split!r} under {root}')
    return dataset


def create_eval_loader(args, dataset, data_config, crop_pct, device, model_dtype, model):
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


@torch.inference_mode()
def evaluate(args, model, loader, num_classes, device, model_dtype, amp_autocast,
             valid_labels=None, real_labels=None, tag='Test', offset=None, collect=None):
    """Run ``model`` over ``loader``; returns (LongTailMeter, mean cross-entropy).

    ``offset`` [C] is added to the logits before scoring (post-hoc logit adjustment); ``collect``, a list, gets
    each batch's (logits before the offset, targets) on the CPU.
    """
    criterion = nn.CrossEntropyLoss().to(device)
    meter = LongTailMeter(num_classes)
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
        losses.update(loss.item(), input.shape[0])
        batch_time.update(time.time() - end)
        end = time.time()
        if batch_idx % args.log_freq == 0:
            acc = meter.topk_accuracy()
            _logger.info(
                f'{tag}: [{batch_idx:>4d}/{len(loader)}]  Time: {batch_time.avg:.3f}s  '
                f'Loss: {losses.avg:>6.4f}  Acc@1: {acc[1]:>7.3f}  Acc@5: {acc[5]:>7.3f}')
    return meter, losses.avg


def _imagenet_c(args, model, data_config, crop_pct, device, model_dtype, amp_autocast, num_classes, offset=None):
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
        errors[c].append(1. - meter.hits[1] / meter.count)
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


def validate(args):
    args.prefetcher = not args.no_prefetcher
    args.data_dir = args.data or args.data_dir
    checkpoints = split_checkpoints(args.checkpoint)
    args.pretrained = args.pretrained or not checkpoints
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)

    model_dtype = None
    if args.model_dtype:
        if args.model_dtype not in ('float32', 'float16', 'bfloat16'):
            raise ValueError(f'--model-dtype must be float32, float16 or bfloat16, got {args.model_dtype!r}')
        model_dtype = getattr(torch, args.model_dtype)
    amp_autocast = suppress
    if args.amp:
        if model_dtype not in (None, torch.float32):
            raise ValueError('--amp needs --model-dtype float32')
        if args.amp_dtype not in ('float16', 'bfloat16'):
            raise ValueError(f'--amp-dtype must be float16 or bfloat16, got {args.amp_dtype!r}')
        amp_dtype = torch.bfloat16 if args.amp_dtype == 'bfloat16' else torch.float16
        amp_autocast = partial(torch.autocast, device_type=device.type, dtype=amp_dtype)
    if args.ood and args.class_map:
        raise ValueError('--class-map cannot be combined with --ood: OOD sets map their wnid folders themselves')
    if args.ood and args.dataset:
        raise ValueError(f'--dataset must be empty with --ood {args.ood}: OOD sets are read as wnid image folders')
    if args.ood and not args.data_dir:
        raise ValueError(f'--ood {args.ood}: --data-dir must point at the dataset root')

    utils.random_seed(args.seed)
    if args.fuser:
        set_jit_fuser(args.fuser)
    if args.fast_norm:
        set_fast_norm()

    class_counts = resolve_class_counts(args, checkpoints)
    if args.logit_adjust and class_counts is None:
        raise ValueError(f'--logit-adjust {args.logit_adjust:g} needs the training class counts: pass --class-counts '
                         f'PATH or keep {CLASS_COUNTS_FILE} beside --checkpoint')

    in_chans = args.in_chans if args.in_chans is not None else (args.input_size[0] if args.input_size else 3)
    model = build_model(args, checkpoints, in_chans)
    if args.reparam and not checkpoints:
        model = reparameterize_model(model)
    num_model_classes = model.num_classes
    param_count = sum(p.numel() for p in model.parameters())
    _logger.info(f'Model {args.model} created, param count: {param_count}')

    data_config = match_model_channels(
        resolve_data_config(vars(args), model=model, use_test_size=not args.use_train_size, verbose=True), in_chans)
    test_time_pool = False
    if args.test_pool:
        model, test_time_pool = apply_test_time_pool(model, data_config)
    model = model.to(device=device, dtype=model_dtype)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.torchscript:
        model = torch.jit.script(model)
    elif args.torchcompile:
        torch._dynamo.reset()
        model = torch.compile(model, backend=args.torchcompile, mode=args.torchcompile_mode)
    elif args.aot_autograd:
        from functorch.compile import memory_efficient_fusion
        model = memory_efficient_fusion(model)
    if args.num_gpu > 1:
        model = torch.nn.DataParallel(model, device_ids=list(range(args.num_gpu)))
    model.eval()

    crop_pct = 1.0 if test_time_pool else data_config['crop_pct']
    results = dict(model=args.model)
    if len(checkpoints) > 1:
        results['ensemble'] = len(checkpoints)
    if args.logit_adjust:
        results['logit_adjust'] = args.logit_adjust

    if args.ood == 'imagenet-c':
        offset = logit_adjust_offset(args, class_counts, num_model_classes, device)
        results.update(_imagenet_c(
            args, model, data_config, crop_pct, device, model_dtype, amp_autocast, num_model_classes, offset))
        results.update(param_count=round(param_count / 1e6, 2), img_size=data_config['input_size'][-1],
                       crop_pct=crop_pct, interpolation=data_config['interpolation'])
        _logger.info(f" * ImageNet-C mCE {results['mce']:.3f}")
        return results

    root = args.data_dir
    valid_labels, class_map = None, None
    if args.valid_labels:
        valid_labels = read_valid_labels(args.valid_labels, num_model_classes)
    if args.ood:
        if num_model_classes != 1000:
            raise ValueError(
                f'--ood {args.ood} needs a 1000-class ImageNet model, {args.model} has {num_model_classes}')
        class_map = ood_class_map(args.ood)
        check_class_folders(root, class_map)
        if args.ood in ('imagenet-r', 'imagenet-a'):
            if valid_labels is not None:
                raise ValueError(f'--valid-labels cannot be combined with --ood {args.ood} (it sets its own mask)')
            valid_labels = subset_mask(args.ood)
    num_classes = len(valid_labels) if valid_labels is not None else num_model_classes
    if class_counts is not None and valid_labels is not None:  # the evaluation scores only these classes
        if len(class_counts) != num_model_classes:
            raise ValueError(f'the class counts cover {len(class_counts)} classes, but {args.model} has '
                             f'{num_model_classes}: they cannot be narrowed to the evaluated classes')
        class_counts = [class_counts[i] for i in valid_labels]

    dataset = create_eval_dataset(args, root, data_config, class_map=class_map, num_classes=num_classes)
    check_dataset_classes(dataset, num_classes, '--valid-labels' if args.valid_labels else '--num-classes')
    real_labels = RealLabelsImagenet(dataset.filenames(basename=True), real_json=args.real_labels) \
        if args.real_labels else None
    loader = create_eval_loader(args, dataset, data_config, crop_pct, device, model_dtype, model)
    offset = logit_adjust_offset(args, class_counts, num_classes, device)
    collect = [] if args.logits_file else None
    meter, loss = evaluate(args, model, loader, num_classes, device, model_dtype, amp_autocast,
                           valid_labels=valid_labels, real_labels=real_labels, offset=offset, collect=collect)
    if collect is not None:
        save_logits(args.logits_file, torch.cat([o for o, _ in collect]), torch.cat([t for _, t in collect]))

    acc = meter.topk_accuracy()
    top1, top5 = (real_labels.get_accuracy(k=1), real_labels.get_accuracy(k=5)) if real_labels else (acc[1], acc[5])
    results.update(top1=round(top1, 4), top1_err=round(100 - top1, 4), top5=round(top5, 4),
                   top5_err=round(100 - top5, 4), loss=round(loss, 6))
    if args.metrics_avg:
        results.update(precision_recall_f1(
            meter.class_correct, meter.class_total, meter.class_predicted, average=args.metrics_avg))
    rows = per_class_rows(meter.class_correct, meter.class_total, class_counts, args.many_shot_thr, args.few_shot_thr)
    if class_counts is not None:
        lt = long_tail_accuracy(meter.class_correct, meter.class_total, class_counts,
                                args.many_shot_thr, args.few_shot_thr)
        results.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in lt.items()})
    per_class_file = args.per_class_file or (_default_side_file(args, '.csv') if class_counts is not None else '')
    if per_class_file:  # without class counts (only when asked for): no train counts, no splits
        write_per_class_csv(per_class_file, rows)
    plot_file = args.per_class_plot or (_default_side_file(args, '.png') if class_counts is not None else '')
    if plot_file:
        _plot_per_class(args, rows, plot_file, asked=bool(args.per_class_plot))
    results.update(param_count=round(param_count / 1e6, 2), img_size=data_config['input_size'][-1],
                   crop_pct=crop_pct, interpolation=data_config['interpolation'])
    msg = f" * Acc@1 {results['top1']:.3f} ({results['top1_err']:.3f}) Acc@5 {results['top5']:.3f}"
    if class_counts is not None:
        msg += ' | ' + ' '.join(f"{s} {results[f'{s}_acc']}" for s in ('many', 'medium', 'few'))
    _logger.info(msg)
    return results


def _plot_per_class(args, rows, plot_file: str, asked: bool) -> None:
    """The per-class plot; the default one (not asked for by --per-class-plot) is skipped without matplotlib."""
    try:
        from timm_paco.eval.plot import plot_per_class_accuracy
        plot_per_class_accuracy(rows, plot_file, args.many_shot_thr, args.few_shot_thr, title=args.model)
    except ImportError as e:
        if asked:
            raise
        _logger.warning(f'Per-class plot {plot_file} not written: {e}')


def _try_run(args, initial_batch_size):
    batch_size = initial_batch_size
    error = 'Unknown'
    while batch_size:
        args.batch_size = batch_size * args.num_gpu
        try:
            if 'cuda' in args.device and torch.cuda.is_available():
                torch.cuda.empty_cache()
            return validate(args)
        except RuntimeError as e:
            error = str(e)
            _logger.error(f'"{error}" while running validation.')
            if not utils.check_batch_size_retry(error):
                break
        batch_size = utils.decay_batch_step(batch_size)
        _logger.warning(f'Reducing batch size to {batch_size} for retry.')
    _logger.error(f'{args.model} failed to validate ({error}).')
    return dict(model=args.model, error=error)


_NON_IN1K_FILTERS = ['*_in21k', '*_in22k', '*in12k', '*_dino', '*fcmae', '*seer']


def bulk_configs(args):
    """(model, checkpoint) pairs for timm's bulk modes: checkpoint folder, 'all', wildcard, model-list file."""
    if os.path.isdir(args.checkpoint):
        files = [f for ext in ('*.pth.tar', '*.pth') for f in glob.glob(os.path.join(args.checkpoint, ext))]
        return [(args.model, c) for c in sorted(files, key=natural_key)]
    if args.model == 'all':
        args.pretrained = True
        return [(n, '') for n in list_models(pretrained=True, exclude_filters=_NON_IN1K_FILTERS)]
    if not is_model(args.model):
        configs = [(n, '') for n in list_models(args.model, pretrained=True)]
        if not configs and os.path.isfile(args.model):
            with open(args.model) as f:
                configs = [(line.strip(), None) for line in f if line.strip()]
        return configs
    return []


def main(argv=None):
    args = parser.parse_args(argv)
    configs = bulk_configs(args)
    check_run_args(args, bulk=len(configs))
    if configs:
        _logger.info('Bulk validation of: ' + ', '.join(f'{m} {c or ""}' for m, c in configs))
        results = []
        initial_batch_size = args.batch_size
        try:
            for m, c in configs:
                args.model, args.checkpoint = m, c or ''
                args.bulk_tag = _bulk_tag(m, args.checkpoint)
                try:
                    r = _try_run(args, initial_batch_size)
                except (ValueError, FileNotFoundError) as e:  # this model or checkpoint: recorded, the run goes on
                    _logger.error(f'{m} {args.checkpoint}: {e}')
                    r = dict(model=m, error=str(e))
                if args.checkpoint:
                    r['checkpoint'] = args.checkpoint
                results.append(r)
        except KeyboardInterrupt:
            pass
        results = sorted(results, key=lambda x: x.get('top1', -x.get('mce', 0)), reverse=True)
    elif args.retry:
        results = _try_run(args, args.batch_size)
    else:
        results = validate(args)
    if args.results_file:
        write_results(args.results_file, results, format=args.results_format)
    print(f'--result\n{json.dumps(results, indent=4)}')
    return results


if __name__ == '__main__':
    utils.setup_default_logging()
    main()
