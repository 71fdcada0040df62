"""Flags of ``python -m timm_paco.seg train`` / ``evaluate``: train.py's device, optimizer, schedule and training-loop
groups (the same flags and meanings), then the segmentation data, model, loss and run flags."""
import argparse

from timm.utils import ParseKwargs

from timm_paco.arg_types import non_negative_float, non_negative_int, positive_float, positive_int
from timm_paco.cli.train_args import add_device_args, add_loop_args, add_optimizer_args, add_schedule_args
from timm_paco.seg.model import SEG_ARCHS

__all__ = ['build_train_parser', 'build_eval_parser', 'SEG_LOSSES']

SEG_LOSSES = ('ce', 'pixel-paco')


def _data_args(parser, train: bool):
    g = parser.add_argument_group('Data')
    g.add_argument('--data-dir', required=True, metavar='DIR',
                   help='segmentation folder: <split>/images/*.png|jpg and <split>/masks/*.png (8-bit labels)')
    if train:
        g.add_argument('--train-split', default='train', help='training split (default: train)')
        g.add_argument('--val-split', default='test', help='split scored after training and every --val-interval '
                                                            'epochs (default: test; "" for none)')
    else:
        g.add_argument('--split', default='test', help='split to score (default: test)')
    g.add_argument('--num-classes', type=positive_int, default=None,
                   help='classes, background included (default: the folder\'s classes.json / mosaics.json)')
    g.add_argument('--ignore-index', type=non_negative_int, default=255, help='unlabelled pixels (default: 255)')
    g.add_argument('-b', '--batch-size', type=positive_int, default=8, help='images per batch and process')
    g.add_argument('-j', '--workers', type=non_negative_int, default=2, help='loader workers (default: 2)')


def _model_args(parser):
    g = parser.add_argument_group('Model (segmentation-models-pytorch on a timm encoder)')
    g.add_argument('--encoder', '--model', dest='encoder', default=None,
                   help='timm encoder, e.g. resnet18, convnext_atto, swin_tiny_patch4_window7_224 (default: '
                        'resnet18; evaluate: the checkpoint\'s)')
    g.add_argument('--arch', default=None, choices=SEG_ARCHS, help='smp decoder (default: UPerNet, GPaCo\'s ADE20K '
                                                                 'head; evaluate: the checkpoint\'s)')
    g.add_argument('--proj-dim', type=non_negative_int, default=None,
                   help='pixel projector width (default: 128 with --loss pixel-paco, 0 (none) with ce)')
    g.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                   help='keyword arguments of the smp model: its decoder\'s (decoder_channels=64) and the timm '
                        'encoder\'s (img_size=64 window_size=4 for a Swin); evaluate: the checkpoint\'s')


def _loss_args(parser):
    g = parser.add_argument_group('Loss: CE + --paco-weight x pixel PaCo (GPaCo)')
    g.add_argument('--loss', default='pixel-paco', choices=SEG_LOSSES, help='ce, or ce + pixel PaCo (default)')
    g.add_argument('--paco-alpha', type=non_negative_float, default=0.01,
                   help='weight of the same-class pixels (default 0.01; GPaCo Cityscapes R50 0.03, R101 0.02)')
    g.add_argument('--paco-beta', type=non_negative_float, default=1.0, help='weight of the true class (1)')
    g.add_argument('--paco-gamma', type=non_negative_float, default=1.0, help='weight of the pixels in the '
                                                                             'denominator (1)')
    g.add_argument('--paco-temperature', type=positive_float, default=0.07, help='temperature T (0.07)')
    g.add_argument('--paco-pixels', type=non_negative_int, default=8192,
                   help='pixels drawn per image (default 8192; 0 = every pixel)')
    g.add_argument('--paco-weight', type=non_negative_float, default=1.0, help='weight of the pixel PaCo loss (1)')


def _run_args(parser):
    g = parser.add_argument_group('Run')
    g.add_argument('--seed', type=non_negative_int, default=42, help='random seed (default: 42)')
    g.add_argument('--output', default='output/seg', metavar='PATH', help='output root (default: output/seg)')
    g.add_argument('--experiment', default='', metavar='NAME', help='run sub-folder name')
    g.add_argument('--resume', default='', metavar='PATH', help='resume a run from its checkpoint')
    g.add_argument('--no-resume-opt', action='store_true', help='resume the weights only, not the optimizer')
    g.add_argument('--overwrite', action='store_true', help='start over in an --experiment folder holding a run')
    g.add_argument('--debug', action='store_true', help='print the traceback of an error')


def build_train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m timm_paco.seg train',
                                     description='Train a segmentation model (smp decoder, timm encoder) with CE '
                                                 'or CE + GPaCo\'s pixel PaCo loss')
    _data_args(parser, train=True)
    _model_args(parser)
    _loss_args(parser)
    add_device_args(parser)
    add_optimizer_args(parser)
    add_schedule_args(parser)
    add_loop_args(parser)
    _run_args(parser)
    # segmentation defaults (mmseg's SGD recipe, scaled to short CPU runs): poly schedule, lr 0.01, wd 5e-4; one
    # checkpoint kept, a progress line every 20 updates
    parser.set_defaults(sched='poly', lr=0.01, weight_decay=5e-4, warmup_epochs=0, epochs=20, decay_rate=0.9,
                        checkpoint_hist=1, log_interval=20)
    return parser


def build_eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m timm_paco.seg evaluate',
                                     description='Score a segmentation checkpoint: mIoU, pixel accuracy, per-class IoU')
    _data_args(parser, train=False)
    _model_args(parser)
    g = parser.add_argument_group('Evaluation')
    g.add_argument('--checkpoint', required=True, metavar='PATH', help='a checkpoint of python -m timm_paco.seg train')
    g.add_argument('--device', default=None, help='device (default: cuda when available, else cpu)')
    g.add_argument('--amp', action='store_true', help='autocast')
    g.add_argument('--amp-dtype', default='bfloat16', help='autocast dtype (bfloat16 or float16)')
    g.add_argument('--results-file', default='', metavar='FILE',
                   help='results JSON; <stem>_per_class.csv / .png written beside it')
    g.add_argument('--predictions', default='', metavar='PNG', help='a picture of image / labels / prediction')
    g.add_argument('--num-predictions', type=positive_int, default=6, help='images in --predictions (6)')
    g.add_argument('--debug', action='store_true', help='print the traceback of an error')
    return parser

