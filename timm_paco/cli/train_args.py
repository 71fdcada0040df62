"""train.py's argument set: timm train.py's flags (names, defaults and meanings as there) plus ``--task`` and the
``--paco-*`` flags, one function per argument group; ``parse_args`` reads a ``-c`` YAML of defaults first."""
import argparse

from timm import utils
from timm.loss import LOSS_TYPES

from timm_paco.arg_types import (
    decay_rate, finite_float, non_negative_float, non_negative_int, positive_float, positive_int, probability,
)
from timm_paco.cli.inputs import read_config_defaults
from timm_paco.cli.usage import UsageError
from timm_paco.recipes import get_recipe
from timm_paco.cli.method_modules import add_method_modules_arg, import_methods_of_argv
from timm_paco.methods import LOGIT_ADJUST_MODES, get_method, list_methods, task_names
from timm_paco.tasks import VIEW_FORWARDS
from timm_paco.data.samplers import SAMPLERS
from timm_paco.tasks.classifier_retrain import RETRAIN_MODES
from timm_paco.tasks.projector import PROJ_TYPES

__all__ = ['TIMM_VIEWS', 'MULTI_LABEL_ONLY', 'build_parser', 'parse_args', 'add_device_args', 'add_optimizer_args',
           'add_schedule_args', 'add_loop_args']

TIMM_VIEWS = 'timm'  # --paco-views value: timm's own single-view training transform
MULTI_LABEL_ONLY = ('twoway', 'zlpr', 'db')  # --loss values timm's loss factory takes for multi-label targets only


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Dataset')
    g.add_argument('--data-dir', metavar='DIR', help='dataset root folder')
    g.add_argument('--dataset', metavar='NAME', default='',
                   help='"<type>/<name>" timm dataset, "lt:<split list>", or "" for an image folder')
    g.add_argument('--train-split', metavar='NAME', default='train', help='training split (default: train)')
    g.add_argument('--val-split', metavar='NAME', default='validation',
                   help='validation split, "" for none (default: validation)')
    g.add_argument('--train-num-samples', type=positive_int, default=None, metavar='N',
                   help='train samples (iterable datasets)')
    g.add_argument('--val-num-samples', type=positive_int, default=None, metavar='N',
                   help='val samples (iterable datasets)')
    g.add_argument('--dataset-download', action='store_true', default=False,
                   help='download torch/ and tfds/ datasets that can be')
    g.add_argument('--class-map', type=str, default='', metavar='FILENAME', help='class name to index map file')
    g.add_argument('--input-img-mode', type=str, default=None, help='PIL mode images are converted to')
    g.add_argument('--skip-unreadable-images', action='store_true', default=False,
                   help='read each image file of the split once before starting and leave out those '
                        'that cannot be read (counted and named); without it such a file stops the run, named')
    g.add_argument('--input-key', type=str, default=None, help='dataset key of the image')
    g.add_argument('--target-key', type=str, default=None, help='dataset key of the label')
    g.add_argument('--dataset-trust-remote-code', action='store_true', default=False,
                   help='let Hugging Face datasets run code from the dataset repository')


def _model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Model')
    g.add_argument('--model', type=str, default='resnet50', metavar='MODEL', help='model name (default: resnet50)')
    g.add_argument('--pretrained', action='store_true', default=False, help='start from pretrained weights')
    g.add_argument('--pretrained-path', type=str, default=None, help='use this file as the pretrained weights')
    g.add_argument('--initial-checkpoint', type=str, default='', metavar='PATH', help='load these weights at start')
    g.add_argument('--resume', type=str, default='', metavar='PATH',
                   help='resume model, optimizer, scaler, EMA and task state (queue, key encoder) from a checkpoint, '
                        'or a run folder\'s newest loadable one; "auto": the --experiment folder\'s, else start '
                        '(timm 1.0.31)')
    g.add_argument('--no-resume-opt', action='store_true', default=False, help='do not resume optimizer state')
    g.add_argument('--num-classes', type=positive_int, default=None, metavar='N',
                   help='classes (default: the model\'s)')
    g.add_argument('--gp', type=str, default=None, metavar='POOL', help='global pool type (default: the model\'s)')
    g.add_argument('--img-size', type=positive_int, default=None, metavar='N',
                   help='image size (default: the model\'s)')
    g.add_argument('--in-chans', type=positive_int, default=None, metavar='N', help='image channels (default: 3)')
    g.add_argument('--input-size', type=positive_int, nargs=3, default=None, metavar='N', help='input C H W')
    g.add_argument('--crop-pct', type=positive_float, default=None, metavar='N', help='eval centre crop fraction')
    g.add_argument('--mean', type=finite_float, nargs='+', default=None, metavar='MEAN', help='dataset mean override')
    g.add_argument('--std', type=positive_float, nargs='+', default=None, metavar='STD', help='dataset std override')
    g.add_argument('--interpolation', type=str, default='', metavar='NAME', help='resize interpolation override')
    g.add_argument('-b', '--batch-size', type=positive_int, default=128, metavar='N',
                   help='images per process and step (default: 128)')
    g.add_argument('-vb', '--validation-batch-size', type=positive_int, default=None, metavar='N',
                   help='eval batch size')
    g.add_argument('--channels-last', action='store_true', default=False, help='channels_last memory layout')
    g.add_argument('--fuser', type=str, default='', help='jit fuser: "", te, old or nvfuser')
    g.add_argument('--grad-checkpointing', action='store_true', default=False, help='gradient checkpointing')
    g.add_argument('--fast-norm', action='store_true', default=False, help='timm\'s experimental fast norm')
    g.add_argument('--model-kwargs', nargs='*', default={}, action=utils.ParseKwargs)
    g.add_argument('--head-init-scale', type=finite_float, default=None, help='scale the classifier init by this')
    g.add_argument('--head-init-bias', type=finite_float, default=None, help='classifier bias init value')
    g.add_argument('--torchcompile-mode', type=str, default=None, help='torch.compile mode')
    scripting = g.add_mutually_exclusive_group()
    scripting.add_argument('--torchscript', dest='torchscript', action='store_true', help='torch.jit.script the model')
    scripting.add_argument('--torchcompile', nargs='?', type=str, default=None, const='inductor',
                           help='torch.compile with this backend (default: inductor)')


def add_device_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Device')
    g.add_argument('--device', type=str, default=None, help='device (default: cuda when available, else cpu)')
    g.add_argument('--amp', action='store_true', default=False, help='mixed precision (autocast)')
    g.add_argument('--amp-dtype', type=str, default='float16', help='autocast dtype: float16 or bfloat16')
    g.add_argument('--model-dtype', type=str, default=None, help='model dtype without AMP (default: float32)')
    g.add_argument('--no-ddp-bb', action='store_true', default=False, help='DDP without buffer broadcast')
    g.add_argument('--synchronize-step', action='store_true', default=False, help='synchronize the device each step')
    g.add_argument('--local_rank', type=int, default=0)
    g.add_argument('--device-modules', type=str, nargs='+', default=None, help='modules to import for the device')


def add_optimizer_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Optimizer')
    g.add_argument('--opt', type=str, default='sgd', metavar='OPTIMIZER', help='optimizer (default: sgd)')
    g.add_argument('--opt-eps', type=positive_float, default=None, metavar='EPSILON', help='optimizer epsilon')
    g.add_argument('--opt-betas', type=decay_rate, nargs='+', default=None, metavar='BETA', help='optimizer betas')
    g.add_argument('--momentum', type=non_negative_float, default=0.9, metavar='M',
                   help='optimizer momentum (default: 0.9)')
    g.add_argument('--weight-decay', type=non_negative_float, default=2e-5, help='weight decay (default: 2e-5)')
    g.add_argument('--wd-bias-and-norm', action='store_true', default=False,
                   help='weight decay on every parameter, biases and normalisation weights too, as the papers\' '
                        'ResNet code does (default: timm\'s, which leaves them out)')
    g.add_argument('--clip-grad', type=positive_float, default=None, metavar='NORM', help='gradient clipping value')
    g.add_argument('--clip-mode', type=str, default='norm', help='clipping mode: norm, value or agc')
    g.add_argument('--layer-decay', type=positive_float, default=None, help='layer-wise lr decay')
    g.add_argument('--layer-decay-min-scale', type=non_negative_float, default=0,
                   help='layer-wise lr decay minimum scale')
    g.add_argument('--layer-decay-no-opt-scale', type=finite_float, default=None,
                   help='layer-wise lr decay no-opt scale')
    g.add_argument('--opt-kwargs', nargs='*', default={}, action=utils.ParseKwargs)


def add_schedule_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Learning rate schedule')
    g.add_argument('--sched', type=str, default='cosine', metavar='SCHEDULER', help='lr schedule (default: cosine)')
    g.add_argument('--sched-on-updates', action='store_true', default=False,
                   help='step the schedule (warm-up included) per update instead of per epoch; short runs want it')
    g.add_argument('--lr', type=non_negative_float, default=None, metavar='LR',
                   help='learning rate (default: from --lr-base)')
    g.add_argument('--lr-base', type=non_negative_float, default=0.1, metavar='LR', help='lr per --lr-base-size images')
    g.add_argument('--lr-base-size', type=positive_int, default=256, metavar='DIV', help='batch size of --lr-base')
    g.add_argument('--lr-base-scale', type=str, default='', metavar='SCALE', help='linear or sqrt lr scaling')
    g.add_argument('--lr-noise', type=finite_float, nargs='+', default=None, metavar='pct, pct', help='lr noise epochs')
    g.add_argument('--lr-noise-pct', type=non_negative_float, default=0.67, metavar='PERCENT', help='lr noise limit')
    g.add_argument('--lr-noise-std', type=non_negative_float, default=1.0, metavar='STDDEV', help='lr noise std')
    g.add_argument('--lr-cycle-mul', type=positive_float, default=1.0, metavar='MULT',
                   help='lr cycle length multiplier')
    g.add_argument('--lr-cycle-decay', type=non_negative_float, default=0.5, metavar='MULT', help='lr decay per cycle')
    g.add_argument('--lr-cycle-limit', type=positive_int, default=1, metavar='N', help='lr cycles')
    g.add_argument('--lr-k-decay', type=positive_float, default=1.0, help='k-decay of cosine / poly schedules')
    g.add_argument('--warmup-lr', type=non_negative_float, default=1e-5, metavar='LR', help='warmup lr (default: 1e-5)')
    g.add_argument('--min-lr', type=non_negative_float, default=0, metavar='LR', help='lower lr bound (default: 0)')
    g.add_argument('--epochs', type=positive_int, default=300, metavar='N', help='epochs (default: 300)')
    g.add_argument('--epoch-repeats', type=non_negative_float, default=0., metavar='N',
                   help='dataset repeats per epoch')
    g.add_argument('--start-epoch', type=non_negative_int, default=None, metavar='N',
                   help='start epoch (overrides resume)')
    g.add_argument('--stop-epoch', type=positive_int, default=None, metavar='N',
                   help='stop after N completed epochs, evaluated and saved; the schedule still spans --epochs, so '
                        '--resume goes on from there (timm 1.0.31)')
    g.add_argument('--save-epochs', type=positive_int, nargs='+', default=None, metavar='N',
                   help='after these completed epoch counts, evaluate and keep milestone-N.pth.tar, never pruned '
                        '(timm 1.0.31)')
    g.add_argument('--decay-milestones', type=non_negative_int, nargs='+', default=[90, 180, 270], metavar='MILESTONES',
                   help='multistep decay epochs')
    g.add_argument('--decay-epochs', type=positive_float, default=90, metavar='N', help='step decay interval')
    g.add_argument('--warmup-epochs', type=non_negative_int, default=5, metavar='N',
                   help='warmup epochs (default: 5; stepped per epoch unless --sched-on-updates)')
    g.add_argument('--warmup-prefix', action='store_true', default=False, help='warmup before the decay schedule')
    g.add_argument('--cooldown-epochs', type=non_negative_int, default=0, metavar='N',
                   help='epochs at min lr after the schedule')
    g.add_argument('--patience-epochs', type=non_negative_int, default=10, metavar='N', help='plateau patience')
    g.add_argument('--decay-rate', '--dr', type=non_negative_float, default=0.1, metavar='RATE', help='lr decay rate')


def _augmentation_and_regularization_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Augmentation and regularization')
    g.add_argument('--no-aug', action='store_true', default=False,
                   help='no training augmentation (every view is the plain resized / cropped image)')
    g.add_argument('--train-crop-mode', type=str, default=None, help='training crop mode')
    g.add_argument('--scale', type=probability, nargs='+', default=[0.08, 1.0], metavar='PCT', help='random crop scale')
    g.add_argument('--ratio', type=positive_float, nargs='+', default=[3. / 4., 4. / 3.], metavar='RATIO',
                   help='random crop aspect ratio')
    g.add_argument('--hflip', type=probability, default=0.5, help='horizontal flip probability')
    g.add_argument('--vflip', type=probability, default=0., help='vertical flip probability')
    g.add_argument('--color-jitter', type=non_negative_float, default=0.4, metavar='PCT', help='colour jitter strength')
    g.add_argument('--color-jitter-prob', type=probability, default=None, metavar='PCT',
                   help='colour jitter probability')
    g.add_argument('--grayscale-prob', type=probability, default=None, metavar='PCT', help='grayscale probability')
    g.add_argument('--gaussian-blur-prob', type=probability, default=None, metavar='PCT',
                   help='gaussian blur probability')
    g.add_argument('--aa', type=str, default=None, metavar='NAME',
                   help='auto-augment policy (with views: replaces the randcls view\'s RandAugment)')
    g.add_argument('--aug-repeats', type=non_negative_float, default=0, help='repeated augmentation (distributed only)')
    g.add_argument('--aug-splits', type=non_negative_int, default=0, help='AugMix splits (not with timm_paco tasks)')
    g.add_argument('--jsd-loss', action='store_true', default=False, help='= --loss jsd (not with timm_paco tasks)')
    g.add_argument('--bce-loss', action='store_true', default=False, help='= --loss bce')
    g.add_argument('--bce-sum', action='store_true', default=False, help='sum BCE over classes')
    g.add_argument('--bce-target-thresh', type=probability, default=None,
                   help='binarize soft BCE targets at this value')
    g.add_argument('--bce-pos-weight', type=positive_float, default=None, help='BCE positive weight')
    g.add_argument('--reprob', type=probability, default=0., metavar='PCT', help='random erasing probability')
    g.add_argument('--remode', type=str, default='pixel', help='random erasing mode')
    g.add_argument('--recount', type=positive_int, default=1, help='random erasing count')
    g.add_argument('--resplit', action='store_true', default=False,
                   help='no random erasing on the first split (with views: view 0)')
    g.add_argument('--mixup', type=non_negative_float, default=0.0, help='mixup alpha (ce task, single view)')
    g.add_argument('--cutmix', type=non_negative_float, default=0.0, help='cutmix alpha (ce task, single view)')
    g.add_argument('--cutmix-minmax', type=probability, nargs='+', default=None, help='cutmix min / max ratio')
    g.add_argument('--mixup-prob', type=probability, default=1.0, help='probability of mixup or cutmix')
    g.add_argument('--mixup-switch-prob', type=probability, default=0.5, help='probability of cutmix instead of mixup')
    g.add_argument('--mixup-mode', type=str, default='batch', help='mixup per batch, pair or elem')
    g.add_argument('--mixup-off-epoch', type=non_negative_int, default=0, metavar='N', help='stop mixup at this epoch')
    g.add_argument('--smoothing', type=decay_rate, default=None,
                   help='label smoothing (default per method, timm\'s for cross-entropy and the papers\' for the '
                        'rest: ' + _methods_by(lambda m: f'{m.smoothing or 0:g}') + ')')
    g.add_argument('--train-interpolation', type=str, default='random', help='training interpolation')
    g.add_argument('--drop', type=probability, default=0.0, metavar='PCT', help='dropout rate')
    g.add_argument('--drop-connect', type=probability, default=None, metavar='PCT', help='deprecated, use --drop-path')
    g.add_argument('--drop-path', type=probability, default=None, metavar='PCT', help='drop path rate')
    g.add_argument('--drop-block', type=probability, default=None, metavar='PCT', help='drop block rate')


def add_loop_args(parser: argparse.ArgumentParser) -> None:
    """The epoch loop's flags (``cli/train_loop.py``), shared by train.py and the segmentation trainer."""
    g = parser.add_argument_group('Training loop')
    g.add_argument('--grad-accum-steps', type=positive_int, default=1, metavar='N',
                   help='steps per optimizer update (default: 1)')
    g.add_argument('--log-interval', type=positive_int, default=50, metavar='N',
                   help='updates between progress lines (default: %(default)s)')
    g.add_argument('--val-interval', type=positive_int, default=1, metavar='N',
                   help='epochs between eval / checkpoints')
    g.add_argument('--recovery-interval', type=non_negative_int, default=0, metavar='N',
                   help='updates between recovery saves')
    g.add_argument('--checkpoint-hist', type=positive_int, default=10, metavar='N',
                   help='checkpoints kept (default: %(default)s)')
    g.add_argument('--dist-bn', type=str, default='reduce', choices=('reduce', 'broadcast', ''),
                   help='share BatchNorm stats between ranks after each epoch: broadcast, reduce (the mean) or ""')
    g.add_argument('--max-nonfinite-steps', type=non_negative_int, default=0, metavar='N',
                   help='updates with a NaN / inf loss or gradient skipped (their gradients dropped) before the run '
                        'stops (default: 0, stop at the first)')


def _batch_norm_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Batch norm')
    g.add_argument('--bn-momentum', type=probability, default=None, help='BatchNorm momentum override')
    g.add_argument('--bn-eps', type=positive_float, default=None, help='BatchNorm epsilon override')
    g.add_argument('--sync-bn', action='store_true', help='synchronized BatchNorm (distributed)')
    g.add_argument('--split-bn', action='store_true', help='BatchNorm per AugMix split (not with timm_paco tasks)')


def _model_ema_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Model EMA (separate from the PaCo key encoder)')
    g.add_argument('--model-ema', action='store_true', default=False, help='keep an EMA of the model weights')
    g.add_argument('--model-ema-force-cpu', action='store_true', default=False, help='EMA on CPU, no EMA eval')
    g.add_argument('--model-ema-decay', type=probability, default=0.9998, help='EMA decay (default: 0.9998)')
    g.add_argument('--model-ema-warmup', action='store_true', help='EMA decay warmup')


def _miscellaneous_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Miscellaneous')
    g.add_argument('--seed', type=non_negative_int, default=42, metavar='S', help='random seed (default: 42)')
    g.add_argument('--worker-seeding', type=str, default='all', help='worker seeding mode')
    g.add_argument('-j', '--workers', type=non_negative_int, default=4, metavar='N', help='loader workers (default: 4)')
    g.add_argument('--save-images', action='store_true', default=False, help='save input batches when logging')
    g.add_argument('--pin-mem', action='store_true', default=False, help='pin loader memory')
    g.add_argument('--no-prefetcher', action='store_true', default=False, help='no device prefetcher')
    g.add_argument('--output', type=str, default='', metavar='PATH', help='output root (default: ./output/train)')
    g.add_argument('--experiment', type=str, default='', metavar='NAME', help='run sub-folder name')
    g.add_argument('--eval-metric', type=str, default='top1', metavar='EVAL_METRIC', help='best metric')
    g.add_argument('--tta', type=non_negative_int, default=0, metavar='N', help='test-time augmentation factor')
    g.add_argument('--use-multi-epochs-loader', action='store_true', default=False, help='reuse loader workers')
    g.add_argument('--log-wandb', action='store_true', default=False, help='log to wandb')
    g.add_argument('--wandb-project', type=str, default=None, help='wandb project')
    g.add_argument('--wandb-tags', type=str, nargs='+', default=[], help='wandb tags')
    g.add_argument('--wandb-resume-id', type=str, default='', metavar='ID', help='wandb run id to resume')
    g.add_argument('--train-img-sizes', type=positive_int, nargs='+', default=None,
                   help='per-batch image sizes (single timm view only)')
    g.add_argument('--train-batch-sizes', type=positive_int, nargs='+', default=None,
                   help='batch size per --train-img-sizes')
    g.add_argument('--train-size-probs', type=non_negative_float, nargs='+', default=None,
                   help='weights of --train-img-sizes')
    g.add_argument('--train-size-schedule', type=str, default='constant', choices=('constant', 'progressive'),
                   help='image size schedule')
    g.add_argument('--train-size-schedule-spread', type=float, default=0.65, help='progressive schedule spread')
    g.add_argument('--train-size-random-mix', type=float, default=0.1, help='random share of a progressive schedule')
    g.add_argument('--train-batches-per-epoch', '--train-steps-per-epoch', type=positive_int, default=None,
                   help='loader batches per epoch of a scheduled-size loader')
    g.add_argument('--variable-batch-loss-scale', type=str, default='none', choices=('none', 'sqrt', 'linear'),
                   help='loss scale of variable batch sizes')
    g.add_argument('--naflex-loader', action='store_true', default=False, help='NaFlex loader (not supported here)')
    g.add_argument('--naflex-train-seq-lens', type=int, nargs='+', default=[128, 256, 576, 784, 1024])
    g.add_argument('--naflex-max-seq-len', type=int, default=576)
    g.add_argument('--naflex-patch-sizes', type=int, nargs='+', default=None)
    g.add_argument('--naflex-patch-size-probs', type=float, nargs='+', default=None)
    g.add_argument('--naflex-loss-scale', type=str, default='linear', choices=('none', 'sqrt', 'linear'))
    g.add_argument('--naflex-patchify-channels-first', action='store_true', default=False)


def _knowledge_distillation_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Knowledge distillation (timm\'s tasks; not combinable with --task)')
    g.add_argument('--kd-model-name', type=str, default=None, help='teacher model')
    g.add_argument('--kd-distill-type', type=str, default='logit', choices=['logit', 'feature', 'token'])
    g.add_argument('--kd-loss-type', type=str, default='kl')
    g.add_argument('--distill-loss-weight', type=float, default=None)
    g.add_argument('--task-loss-weight', type=float, default=None)
    g.add_argument('--kd-temperature', type=float, default=4.0)
    g.add_argument('--kd-student-feature-dim', type=int, default=None)
    g.add_argument('--kd-teacher-feature-dim', type=int, default=None)
    g.add_argument('--kd-token-distill-type', type=str, default='soft', choices=['soft', 'hard'])


def _loss_args(parser: argparse.ArgumentParser) -> None:
    """timm 1.0.31's loss flags: ``--loss``, the class statistics file and the class weights."""
    g = parser.add_argument_group('Loss')
    replaceable = ' / '.join(n for n in list_methods() if get_method(n).soft_targets)
    g.add_argument('--loss', type=str, default=None, choices=LOSS_TYPES,
                   help=f'timm\'s classification loss (--task {replaceable} only): ce = the method\'s own '
                        f'cross-entropy over its views (default); bce / asl / poly = timm\'s single-label losses, with '
                        f'timm\'s single-view loader; jsd (AugMix splits) and the multi-label '
                        f'{" / ".join(MULTI_LABEL_ONLY)} are refused')
    g.add_argument('--poly-epsilon', type=finite_float, default=2.0, help='Poly-1 epsilon (--loss poly; 0 = CE)')
    g.add_argument('--class-stats', type=str, default=None, metavar='FILE',
                   help='timm\'s class statistics JSON (its class_weights.py: pos_counts, num_samples): the training '
                        'class counts of every method that needs them and of --loss-class-weight, instead of '
                        'counting the training labels')
    g.add_argument('--loss-class-weight', type=str, default=None, metavar='WEIGHTS',
                   help='per-class loss weights: inv_freq / effective_num (from the class counts, mean 1) or a '
                        'number, comma-separated list or file (timm\'s forms). Unlike timm, which refuses class '
                        'weights for softmax cross-entropy, they also weigh the cross-entropy of --task ce '
                        '(torch\'s weighted mean); and --loss bce')
    g.add_argument('--loss-weight-power', type=non_negative_float, default=1.0, metavar='P',
                   help='exponent of --loss-class-weight inv_freq (default 1; 0.5 = square root)')


def _timm_args(parser: argparse.ArgumentParser) -> None:
    """timm train.py's flags: names, defaults and meanings as there, help in short."""
    parser.add_argument('data', nargs='?', metavar='DIR', const=None, help='dataset root (deprecated, use --data-dir)')
    _dataset_args(parser)
    _model_args(parser)
    add_device_args(parser)
    add_optimizer_args(parser)
    add_schedule_args(parser)
    add_loop_args(parser)
    _augmentation_and_regularization_args(parser)
    _loss_args(parser)
    _batch_norm_args(parser)
    _model_ema_args(parser)
    _miscellaneous_args(parser)
    _knowledge_distillation_args(parser)


def _methods_by(value) -> str:
    """``value(method)`` of each registered method, methods with the same value together: 'a / b: x, c: y'."""
    groups = {}
    for name in list_methods():
        groups.setdefault(value(get_method(name)), []).append(name)
    return ', '.join(f'{" / ".join(names)}: {v}' for v, names in groups.items())


def _methods_with(prior: str) -> str:
    return ' / '.join(n for n in list_methods() if get_method(n).prior == prior)


def _paco_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Long-tail methods (timm-paco)')
    g.add_argument('--task', type=str, default=None, choices=task_names(),
                   help='training method (default: the model\'s own, ce for plain timm models; timm\'s '
                        'classification = ce)')
    add_method_modules_arg(g)
    g.add_argument('--view-forward', type=str, default=None, choices=VIEW_FORWARDS,
                   help='how the views (and dscl\'s PBSD patch groups) pass through the trained model: per-view = '
                        'one forward per view, BatchNorm normalising each view\'s batch on its own; joint = one '
                        'forward of all views, BatchNorm over the mixed batch (default: the method\'s, as its '
                        'authors\' code: ' + _methods_by(lambda m: m.view_forward) + ')')
    g.add_argument('--paco-proj-dim', type=positive_int, default=None,
                   help='embedding width (default: the variant\'s, 128 when wrapping a timm model)')
    g.add_argument('--paco-proj-type', type=str, default=None, choices=PROJ_TYPES,
                   help='projector layout: mlp = Linear-BN-ReLU-Linear, mlp2 = Linear-ReLU-Linear, mlp3 = three '
                        'Linear (default: the variant\'s; wrapping: mlp3 for attention models, else mlp)')
    g.add_argument('--paco-views', type=str, default=None,
                   help=f'view recipe, e.g. randcls_sim, sim_sim, single; "{TIMM_VIEWS}" = timm\'s single-view '
                        f'transform (default: the method\'s own, ' + _methods_by(lambda m: m.views or TIMM_VIEWS) + ')')
    g.add_argument('--paco-logit-adjust', type=str, default='auto', choices=LOGIT_ADJUST_MODES,
                   help='class prior on the logits of the methods with logit adjustment ('
                        + _methods_with('logit-adjust') + '): auto = when the training class counts are long-tailed '
                        '(max / min > 2)')
    g.add_argument('--prior-tau', type=finite_float, default=1.0,
                   help='strength tau of the class prior, logits + tau * log p, for ' + _methods_with('always')
                        + ' and for ' + _methods_with('logit-adjust') + ' with logit adjustment (default: 1.0, the '
                        'papers\' value)')
    g.add_argument('--sampler', type=str, default='instance', choices=SAMPLERS,
                   help='training sampler: instance (timm\'s shuffle), class-balanced (a class uniformly, then an '
                        'image of it), square-root (class p ~ n^0.5), progressive (instance to class-balanced over '
                        'the epochs)')
    g.add_argument('--classifier-retrain', type=str, default=None, choices=RETRAIN_MODES,
                   help='second stage on --initial-checkpoint: train only the classifier, everything else frozen '
                        '(BatchNorm in eval mode): crt re-initialises it, lws learns one scale per class')
    g.add_argument('--imb-factor', type=float, default=None,
                   help='subsample the training split to a long tail with n_min / n_max = this')
    g.add_argument('--imb-seed', type=non_negative_int, default=0, help='seed of the long-tail subsampling')
    g.add_argument('--push-to-hub', type=str, default=None, metavar='REPO_ID',
                   help='push the final checkpoint to this Hugging Face Hub repository')
    g.add_argument('--hub-private', action='store_true', default=False, help='create the Hub repository private')
    g.add_argument('--hub-revision', type=str, default=None, help='Hub branch to push to')
    g.add_argument('--hub-license', type=str, default=None,
                   help='licence on the pushed model card (default: that of the --pretrained weights fine-tuned from, '
                        'else apache-2.0)')


def _method_args(parser: argparse.ArgumentParser) -> None:
    """Each registered method's own flags, in a group of its own (a flag shared by methods: in the first's)."""
    added = set()
    for name in list_methods():
        method = get_method(name)
        own = [flag for flag in method.flags if flag.dest not in added]
        if not own:
            continue
        g = parser.add_argument_group(f'--task {name}: {method.summary}')
        for flag in own:
            g.add_argument(flag.option, **flag.argparse_kwargs)
            added.add(flag.dest)


def _reliability_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group('Reliability (timm-paco)')
    g.add_argument('--overwrite', action='store_true', default=False,
                   help='start over in an --experiment folder that already holds a run (its files are replaced)')
    g.add_argument('--debug', action='store_true', default=False,
                   help='print the traceback of an error (also TIMM_PACO_DEBUG=1)')


def build_parser():
    config_parser = argparse.ArgumentParser(description='Training Config', add_help=False)
    config_parser.add_argument('-c', '--config', default='', type=str, metavar='FILE',
                               help='YAML file of flag defaults')
    config_parser.add_argument('--recipe', default='', type=str, metavar='NAME',
                               help='a paper recipe by name (python -m timm_paco.recipes list), read as -c; a -c '
                                    'file given too overrides it')
    parser = argparse.ArgumentParser(description='timm-paco training')
    _timm_args(parser)
    _paco_args(parser)
    _method_args(parser)
    _reliability_args(parser)
    return config_parser, parser


def parse_args(argv=None):
    import_methods_of_argv(argv)
    config_parser, parser = build_parser()
    args_config, remaining = config_parser.parse_known_args(argv)
    known = [action.dest for action in parser._actions]
    try:
        for path in (_recipe_file(args_config.recipe), args_config.config):
            if path:
                parser.set_defaults(**read_config_defaults(path, known))
    except UsageError as e:
        parser.error(str(e))
    return parser, parser.parse_args(remaining)


def _recipe_file(name: str) -> str:
    """The YAML of ``--recipe NAME`` ('' without one); UsageError naming the flag for an unknown name."""
    if not name:
        return ''
    try:
        return get_recipe(name).path
    except ValueError as e:
        raise UsageError(f'--recipe {e}') from None
