"""validate.py's argument set: timm validate.py's flags (names, defaults and meanings as there) plus the
long-tail and out-of-distribution flags, one function per group; and ``check_run_args``, the refusals before
anything is evaluated."""
import argparse
import os

from timm.utils import ParseKwargs

from timm_paco.arg_types import finite_float, non_negative_float, non_negative_int, percent, positive_float, positive_int
from timm_paco.data.class_counts import CLASS_COUNTS_FILE
from timm_paco.data.ood import OOD_DATASETS

__all__ = ['build_parser', 'check_run_args']


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    """Dataset flags (timm)."""
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
    parser.add_argument('--skip-unreadable-images', action='store_true', default=False,
                        help='read each image file of the split once before starting and leave out those '
                             'that cannot be read (counted and named); without it such a file stops the run, named')
    parser.add_argument('--target-key', default=None, type=str, help='dataset key of the targets')
    parser.add_argument('--dataset-trust-remote-code', action='store_true', default=False,
                        help='let Hugging Face datasets run code from the dataset repository')


def _model_args(parser: argparse.ArgumentParser) -> None:
    """Model, input and checkpoint flags (timm)."""
    parser.add_argument('--model', '-m', metavar='NAME', default='dpn92', help='model name (default: dpn92)')
    parser.add_argument('--pretrained', dest='pretrained', action='store_true', help='use pretrained weights')
    parser.add_argument('-j', '--workers', default=4, type=non_negative_int, metavar='N',
                        help='data loading workers (default: 4)')
    parser.add_argument('-b', '--batch-size', default=256, type=positive_int, metavar='N',
                        help='batch size (default: 256)')
    parser.add_argument('--img-size', default=None, type=positive_int, metavar='N',
                        help='input image size (model default)')
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
    parser.add_argument('--mean', type=finite_float, nargs='+', default=None, metavar='MEAN',
                        help='override pixel mean')
    parser.add_argument('--std', type=positive_float, nargs='+', default=None, metavar='STD', help='override pixel std')
    parser.add_argument('--interpolation', default='', type=str, metavar='NAME', help='resize interpolation')
    parser.add_argument('--num-classes', type=positive_int, default=None,
                        help='classes of the model (default: the checkpoint\'s, else the model\'s)')
    parser.add_argument('--gp', default=None, type=str, metavar='POOL', help='global pool type (model default)')
    parser.add_argument('--log-freq', default=10, type=positive_int, metavar='N',
                        help='log every N batches (default: 10)')
    parser.add_argument('--checkpoint', default='', type=str, metavar='PATH',
                        help='checkpoint file; a folder validates every *.pth.tar / *.pth in it; '
                             'comma-separated files are evaluated as a logit-averaging ensemble')


def _runtime_args(parser: argparse.ArgumentParser) -> None:
    """Device, precision, compilation and loader flags (timm)."""
    parser.add_argument('--num-gpu', type=positive_int, default=1, help='number of GPUs (DataParallel)')
    parser.add_argument('--test-pool', dest='test_pool', action='store_true', help='test-time pooling')
    parser.add_argument('--no-prefetcher', action='store_true', default=False, help='disable the fast prefetcher')
    parser.add_argument('--pin-mem', action='store_true', default=False, help='pin DataLoader memory')
    parser.add_argument('--channels-last', action='store_true', default=False, help='channels_last memory layout')
    parser.add_argument('--device', default=None, type=str, help='device (default: cuda when available, else cpu)')
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


def _output_args(parser: argparse.ArgumentParser) -> None:
    """Results, label sets, retry and metric flags (timm)."""
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


def _long_tail_args(parser: argparse.ArgumentParser) -> None:
    """Long-tail metrics, post-hoc logit adjustment and the logits file (timm-paco)."""
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
    group.add_argument('--tau-norm', default=0.0, type=non_negative_float, metavar='TAU',
                       help='post-hoc tau-normalised classifier: class weights w_c / ||w_c||^TAU, bias kept (Kang et '
                            'al. 2020; default: 0, the classifier as trained)')
    group.add_argument('--ncm', action='store_true', default=False,
                       help='score with the nearest class mean of the L2-normalised features (cosine), the class '
                            'means taken on --ncm-split (Kang et al. 2020) instead of the classifier')
    group.add_argument('--ncm-split', default='train', type=str, metavar='SPLIT',
                       help='split of --data-dir whose images give the --ncm class means (default: train)')
    group.add_argument('--features-file', default='', type=str, metavar='FILENAME',
                       help='write the pre-logit features [N, F], targets [N] and the linear classifier to this '
                            'safetensors file, for a --tau-norm sweep without running the model again')
    group.add_argument('--logits-file', default='', type=str, metavar='FILENAME',
                       help='write the logits [N, C] (before --logit-adjust) and targets [N] to this safetensors file')


def _ood_args(parser: argparse.ArgumentParser) -> None:
    """Out-of-distribution sets (timm-paco)."""
    group = parser.add_argument_group('Out-of-distribution sets (timm-paco)')
    group.add_argument('--ood', default='', choices=('',) + OOD_DATASETS,
                       help='evaluate --data-dir as this OOD set, read in its shipped folder layout')
    group.add_argument('--ood-corruptions', default='', type=str,
                       help='ImageNet-C: comma-separated corruptions to evaluate (default: all 15)')
    group.add_argument('--clean-error', default=None, type=percent,
                       help='ImageNet-C: the model\'s clean ImageNet top-1 error in %% (enables relative mCE)')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='timm-paco validation: timm validate.py + long-tail / OOD metrics')
    parser.add_argument('--debug', action='store_true', default=False,
                        help='print the traceback of an error (also TIMM_PACO_DEBUG=1)')
    for add in (_dataset_args, _model_args, _runtime_args, _output_args, _long_tail_args, _ood_args):
        add(parser)
    return parser


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
    if args.ncm and args.tau_norm:
        raise ValueError(f'--tau-norm {args.tau_norm:g}: --ncm replaces the classifier whose weights tau-norm '
                         f'rescales; pass one of them')
    outputs = (('--results-file', args.results_file), ('--logits-file', args.logits_file),
               ('--features-file', args.features_file), ('--per-class-file', args.per_class_file),
               ('--per-class-plot', args.per_class_plot))
    for flag, path in outputs:
        if path and os.path.isdir(path):
            raise ValueError(f'{flag} {path}: a folder; name the file to write')
    for flag, path in outputs:
        if path and os.path.dirname(path):
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except OSError as e:
                raise ValueError(f'{flag} {path}: its folder cannot be made ({e.strerror})') from None
