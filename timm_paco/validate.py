"""Validate timm and PaCo models: timm's validate.py flags plus long-tail and out-of-distribution metrics.

Every flag of timm's validate.py keeps its meaning (``--data-dir --dataset --split --model --checkpoint -b
--img-size --amp --results-file …``, bulk validation of a checkpoint folder / model list / wildcard).
Added:

* Long-tail metrics: ``--class-counts PATH`` (training images per class, ``class_counts.json``; by default the
  file beside ``--checkpoint`` when it exists), ``--lt-metrics`` (require them), ``--many-shot-thr 100
  --few-shot-thr 20`` (many: count > many, few: count < few, medium: in between inclusive). Reports
  ``many_acc / medium_acc / few_acc``, writes a per-class CSV (``--per-class-file``) and a PNG of per-class
  accuracy against training count (``--per-class-plot``); both default to ``<results-file stem>_per_class.*``
  (``<stem>_<checkpoint or model>_per_class.*`` for each evaluation of a bulk run). A bulk run records a model or
  checkpoint that fails with its ``error`` and goes on.
* Calibration: expected calibration error (15 equal-width bins, torchmetrics) overall and on many / medium /
  few (``ece``, ``many_ece`` …, in %), and beside ``--results-file`` a reliability diagram
  (``<stem>_reliability.png``) and the confusion matrix (``<stem>_confusion.csv``, rows the true class).
* ``--ncm``: the nearest class mean of the normalised features (class means from ``--ncm-split``) scores instead.
* ``--tau-norm TAU``: the classifier's class weights divided by their norm to the power TAU (Kang et al. 2020).
* ``--logit-adjust TAU``: post-hoc logit adjustment, scoring ``logits − TAU · log p`` with ``p`` the class prior
  of those class counts; ``--logits-file F``: the logits [N, C] (before the adjustment) and targets [N] as
  safetensors, for sweeps without re-running the model (``timm_paco.eval.logit_adjust``); ``--features-file F``:
  the pre-logit features and the linear classifier, for a τ-norm sweep (``timm_paco.eval.sweep_tau_norm``).
* ``--checkpoint a.pth.tar,b.pth.tar``: ensemble of the checkpoints, logits averaged (not softmax).
* ``--ood imagenet-r|imagenet-a|imagenet-sketch|imagenet-c`` with ``--data-dir`` the dataset as shipped
  (``ROOT/<wnid>/*`` folders; ImageNet-C ``ROOT/<corruption>/<severity>/<wnid>/*``). R / A score the 200
  matching logits of a 1000-class model. ImageNet-C evaluates all 15 corruptions x 5 severities (a subset only
  when named by ``--ood-corruptions``) and reports CE per corruption and mCE, normalised by AlexNet, and with
  ``--clean-error`` (the model's clean top-1 error in %) relative CE / relative mCE.
* Checkpoints of either layout (train.py's plain ``state_dict``, the seeds')
  load into the registered name (``paco_resnet32``) or the stock architecture (``resnet32_cifar``); the projector
  is not needed.
"""
import argparse
import json
import logging
import sys

import torch

import timm_paco  # noqa: F401  registers the PaCo models
from timm import utils
from timm.data import RealLabelsImagenet, resolve_data_config
from timm.layers import set_fast_norm
from timm.utils import set_jit_fuser
from timm_paco.cli.errors import run_main
from timm_paco.cli.inputs import check_device, check_input_size, check_model_name, resolve_device
from timm_paco.cli.precision import resolve_precision
from timm_paco.cli.validate_args import build_parser, check_run_args
from timm_paco.cli.validate_bulk import bulk_configs, bulk_tag, try_run
from timm_paco.cli.validate_data import create_eval_dataset, create_eval_loader, read_valid_labels, resolve_class_counts
from timm_paco.cli.validate_eval import evaluate, evaluate_imagenet_c, logit_adjust_offset
from timm_paco.cli.validate_model import build_model, prepare_model
from timm_paco.cli.validate_report import accuracy_results, calibration_results, class_results, summary_line
from timm_paco.data import check_dataset_classes, match_model_channels
from timm_paco.data.class_counts import CLASS_COUNTS_FILE
from timm_paco.data.ood import check_class_folders, ood_class_map, subset_mask
from timm_paco.data.metrics import class_splits
from timm_paco.eval import (
    CalibrationMeter, ClassifierInputs, attach_ncm, class_means, save_features, save_logits, split_checkpoints,
    tau_normalize_classifier, write_results,
)

_logger = logging.getLogger('validate')

parser = build_parser()


def _set_up(args):
    """Flags resolved and checked, RNG seeded; returns (checkpoint paths, device, Precision)."""
    args.prefetcher = not args.no_prefetcher
    args.data_dir = args.data or args.data_dir
    checkpoints = split_checkpoints(args.checkpoint)
    args.pretrained = args.pretrained or not checkpoints
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    precision = resolve_precision(args.model_dtype, args.amp, args.amp_dtype)
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
    return checkpoints, torch.device(args.device), precision


def _label_space(args, num_model_classes: int, class_counts):
    """The scored classes: (valid label indices or None, OOD class map or None, classes scored, their class
    counts or None)."""
    valid_labels, class_map = None, None
    if args.valid_labels:
        valid_labels = read_valid_labels(args.valid_labels, num_model_classes)
    if args.ood:
        if num_model_classes != 1000:
            raise ValueError(
                f'--ood {args.ood} needs a 1000-class ImageNet model, {args.model} has {num_model_classes}')
        class_map = ood_class_map(args.ood)
        check_class_folders(args.data_dir, class_map)
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
    return valid_labels, class_map, num_classes, class_counts


def _evaluate_split(args, model, data_config, crop_pct, device, precision, num_model_classes, class_counts):
    """One pass over ``--split`` (or an OOD set); returns the accuracy and per-class results."""
    valid_labels, class_map, num_classes, class_counts = _label_space(args, num_model_classes, class_counts)
    dataset = create_eval_dataset(args, args.data_dir, data_config, class_map=class_map, num_classes=num_classes)
    check_dataset_classes(dataset, num_classes, '--valid-labels' if args.valid_labels else '--num-classes')
    real_labels = RealLabelsImagenet(dataset.filenames(basename=True), real_json=args.real_labels) \
        if args.real_labels else None
    loader = create_eval_loader(args, dataset, data_config, crop_pct, device, precision.model_dtype, model)
    offset = logit_adjust_offset(args, class_counts, num_classes, device)
    collect = [] if args.logits_file or args.features_file else None
    splits = class_splits(class_counts, args.many_shot_thr, args.few_shot_thr) if class_counts is not None else None
    calibration = CalibrationMeter(num_classes, splits)
    tap = ClassifierInputs(model) if args.features_file else None
    try:
        meter, loss = evaluate(args, model, loader, num_classes, device, precision.model_dtype,
                               precision.autocast(device), valid_labels=valid_labels, real_labels=real_labels,
                               offset=offset, collect=collect, calibration=calibration)
    finally:
        if tap is not None:
            tap.remove()
    if collect is not None:
        targets = torch.cat([t for _, t in collect])
        if args.logits_file:
            save_logits(args.logits_file, torch.cat([o for o, _ in collect]), targets)
        if tap is not None:
            save_features(args.features_file, tap.features(), targets, *tap.classifier())
    return {**accuracy_results(meter, loss, real_labels), **class_results(args, meter, class_counts),
            **calibration_results(args, calibration)}


def _attach_ncm(args, model, data_config, device, precision, num_classes) -> None:
    """``--ncm``: the class means of the ``--ncm-split`` images' normalised features (the evaluation transform,
    float32) replace the classifier of the plain model, before it is compiled or wrapped."""
    dataset = create_eval_dataset(argparse.Namespace(**{**vars(args), 'split': args.ncm_split}), args.data_dir,
                                  data_config, split_arg='--ncm-split')
    loader = create_eval_loader(args, dataset, data_config, data_config['crop_pct'], device, precision.model_dtype,
                                model)
    model.to(device=device, dtype=precision.model_dtype)
    batches = ((images.to(device=device, dtype=precision.model_dtype), targets) for images, targets in loader)
    attach_ncm(model, class_means(model, batches, num_classes))
    _logger.info(f'NCM: class means of {len(dataset)} --ncm-split {args.ncm_split} images replace the classifier.')


def validate(args):
    """One evaluation of ``--model`` / ``--checkpoint``; returns the results dict."""
    checkpoints, device, precision = _set_up(args)
    class_counts = resolve_class_counts(args, checkpoints)
    if args.logit_adjust and class_counts is None:
        raise ValueError(f'--logit-adjust {args.logit_adjust:g} needs the training class counts: pass --class-counts '
                         f'PATH or keep {CLASS_COUNTS_FILE} beside --checkpoint')
    in_chans = args.in_chans if args.in_chans is not None else (args.input_size[0] if args.input_size else 3)
    model = build_model(args, checkpoints, in_chans)
    if args.tau_norm:
        tau_normalize_classifier(model, args.tau_norm)
    num_model_classes = model.num_classes
    param_count = sum(p.numel() for p in model.parameters())
    _logger.info(f'Model {args.model} created, param count: {param_count}')
    data_config = match_model_channels(
        resolve_data_config(vars(args), model=model, use_test_size=not args.use_train_size, verbose=True), in_chans)
    check_input_size(model, data_config['input_size'], args.model)
    if args.ncm:
        _attach_ncm(args, model, data_config, device, precision, num_model_classes)
    model, test_time_pool = prepare_model(model, args, data_config, device, precision.model_dtype)
    crop_pct = 1.0 if test_time_pool else data_config['crop_pct']

    results = dict(model=args.model)
    if len(checkpoints) > 1:
        results['ensemble'] = len(checkpoints)
    if args.logit_adjust:
        results['logit_adjust'] = args.logit_adjust
    if args.tau_norm:
        results['tau_norm'] = args.tau_norm
    if args.ncm:
        results['ncm'] = args.ncm_split
    if args.ood == 'imagenet-c':
        offset = logit_adjust_offset(args, class_counts, num_model_classes, device)
        results.update(evaluate_imagenet_c(
            args, model, data_config, crop_pct, device, precision.model_dtype, precision.autocast(device),
            num_model_classes, offset))
    else:
        results.update(_evaluate_split(
            args, model, data_config, crop_pct, device, precision, num_model_classes, class_counts))
    results.update(param_count=round(param_count / 1e6, 2), img_size=data_config['input_size'][-1],
                   crop_pct=crop_pct, interpolation=data_config['interpolation'])
    _logger.info(f" * ImageNet-C mCE {results['mce']:.3f}" if args.ood == 'imagenet-c' else summary_line(results))
    return results


def _validate_bulk(args, configs):
    """Each (model, checkpoint) of a bulk run; a failing one is recorded with its error and the run goes on.
    Results sorted best first."""
    _logger.info('Bulk validation of: ' + ', '.join(f'{m} {c or ""}' for m, c in configs))
    results = []
    initial_batch_size = args.batch_size
    try:
        for m, c in configs:
            args.model, args.checkpoint = m, c or ''
            args.bulk_tag = bulk_tag(m, args.checkpoint)
            try:
                r = try_run(validate, args, initial_batch_size)
            except (ValueError, FileNotFoundError) as e:  # this model or checkpoint: recorded, the run goes on
                _logger.error(f'{m} {args.checkpoint}: {e}')
                r = dict(model=m, error=str(e))
            if args.checkpoint:
                r['checkpoint'] = args.checkpoint
            results.append(r)
    except KeyboardInterrupt:
        pass
    return sorted(results, key=lambda x: x.get('top1', -x.get('mce', 0)), reverse=True)


def main(argv=None):
    args = parser.parse_args(argv)
    configs = bulk_configs(args)
    check_run_args(args, bulk=len(configs))
    args.device = resolve_device(args.device)
    check_device(args.device)
    if not configs:
        check_model_name(args.model)
    if configs:
        results = _validate_bulk(args, configs)
    elif args.retry:
        results = try_run(validate, args, args.batch_size)
    else:
        results = validate(args)
    if args.results_file:
        write_results(args.results_file, results, format=args.results_format)
    print(f'--result\n{json.dumps(results, indent=4)}')
    return results


def cli() -> int:
    """The command line (``python -m timm_paco.validate``, the repository's ``validate.py``,
    ``timm-paco-validate``); returns the exit code."""
    utils.setup_default_logging()
    return run_main(main, 'validate.py')


if __name__ == '__main__':
    sys.exit(cli())
