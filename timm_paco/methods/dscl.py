"""DSCL (Xuan & Zhang, AAAI 2024): decoupled supervised contrastive learning (the own view's key weighted
``alpha``, the class's other samples ``1 - alpha``) with a momentum key encoder and queue, plus PBSD, patch-based
self-distillation on patch crops of the query view; its classifier is retrained in a second stage (cRT)."""
from timm_paco.arg_types import non_negative_float, positive_int, probability
from timm_paco.losses import DSCLLoss
from timm_paco.tasks import DSCLTask
from timm_paco.tasks.dscl import PBSD_WEIGHT

from .method import Method, MethodFlag, Paper, Quickstart, TaskContext, given
from .paco import CONTRASTIVE_VIEWS, PACO_MOMENTUM, PACO_QUEUE_SIZE, PACO_TEMPERATURE
from .registry import register_method

__all__ = ['DSCL']

DSCL_ALPHA = MethodFlag('--dscl-alpha', 'alpha', dict(
    type=probability, default=None,
    help='dscl: weight of the own-view positive, the rest on the class positives (default: 1/9, the official '
         'code\'s beta 8 as alpha = 1 / (1 + beta))'))
PBSD_WEIGHT_FLAG = MethodFlag('--pbsd-weight', 'pbsd_weight', dict(
    type=non_negative_float, default=None,
    help=f'dscl: weight lambda of PBSD, the patch self-distillation (default: {PBSD_WEIGHT:g}, the paper\'s; 0 = off)'),
    late_default=lambda args: PBSD_WEIGHT)
# the data pipeline's PBSD flags (timm_paco.data.create_patch_view_transform)
PBSD_PATCHES = MethodFlag('--pbsd-patches', argparse_kwargs=dict(
    type=positive_int, default=5, metavar='L', help='dscl PBSD: boxes / patches per image (default: 5)'))
PBSD_PATCH_SIZE = MethodFlag('--pbsd-patch-size', argparse_kwargs=dict(
    type=positive_int, default=64, metavar='PX',
    help='dscl PBSD: side of the student\'s patch crops in pixels (default: 64)'))
PBSD_SCALE = MethodFlag('--pbsd-scale', argparse_kwargs=dict(
    type=float, nargs=2, default=[0.05, 0.6], metavar=('MIN', 'MAX'),
    help='dscl PBSD: box area range, fractions of the query view (default: 0.05 0.6)'))


def _build(context: TaskContext, alpha=None, temperature=None, queue_size=None, momentum=0.999, pbsd_weight=None):
    criterion = DSCLLoss(num_classes=context.num_classes, **given(alpha=alpha, temperature=temperature))
    return DSCLTask(context.model, criterion, momentum=momentum, projector=context.projector,
                    **given(queue_size=queue_size, pbsd_weight=pbsd_weight), **context.common())


def _quickstart_flags(budget):
    # DSCL's own loss settings; its patch side (the paper's 64 px of a 224-px view) is 8 px of these 16-px views
    return ['--pbsd-patch-size', '8',
            '--paco-queue-size', str(budget['paco_queue_size']), '--paco-momentum', str(budget['paco_momentum'])]


def _describe(flags) -> str:
    return (f"alpha {flags['dscl_alpha']:.4g}, T {flags['paco_temperature']:g}, queue {flags['paco_queue_size']}, "
            f"PBSD {flags['pbsd_weight']:g} x {flags['pbsd_patches']}")


DSCL = register_method(Method(
    name='dscl', summary='DSCL (Decoupled Supervised Contrastive Learning) with patch-based self-distillation',
    label='DSCL', build=_build,
    paper=Paper('Xuan & Zhang, "Decoupled Contrastive Learning for Long-Tailed Recognition", AAAI 2024',
                code='https://github.com/SY-Xuan/DSCL'),
    flags=(DSCL_ALPHA, PACO_TEMPERATURE, PACO_QUEUE_SIZE, PACO_MOMENTUM, PBSD_WEIGHT_FLAG, PBSD_PATCHES,
           PBSD_PATCH_SIZE, PBSD_SCALE),
    smoothing=None, views=CONTRASTIVE_VIEWS, num_views=2, key_encoder=True, projector=True,
    patches=lambda args: args.pbsd_weight != 0, tags=('dscl', 'contrastive-learning'),
    quickstart=Quickstart(model='dscl_resnet32', flags=_quickstart_flags, second_stage='crt'), describe=_describe))
