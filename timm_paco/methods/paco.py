"""PaCo (Cui et al., ICCV 2021): parametric contrastive learning with learnable class centres, a momentum key
encoder and a labelled queue, the class prior on the centre logits of long-tailed data; two views (query, key)."""
from timm_paco.arg_types import decay_rate, non_negative_float, positive_float, positive_int
from timm_paco.losses import PaCoLoss
from timm_paco.tasks import PaCoTask

from .method import Method, MethodFlag, Paper, Quickstart, TaskContext, given
from .registry import register_method

__all__ = ['PACO', 'PACO_ALPHA', 'PACO_BETA', 'PACO_GAMMA', 'PACO_TEMPERATURE', 'PACO_QUEUE_SIZE', 'PACO_MOMENTUM',
           'CONTRASTIVE_VIEWS', 'paco_loss_weights', 'describe_paco']

CONTRASTIVE_VIEWS = 'randcls_sim'  # one RandAugment view and one SimCLR view, the papers' long-tailed recipe

PACO_ALPHA = MethodFlag('--paco-alpha', 'alpha', dict(
    type=non_negative_float, default=None, help='weight of same-class samples (default: 0.05, the loss default)'))
PACO_BETA = MethodFlag('--paco-beta', 'beta', dict(
    type=non_negative_float, default=None, help='weight of the class centre (default: 1.0)'))
PACO_GAMMA = MethodFlag('--paco-gamma', 'gamma', dict(
    type=non_negative_float, default=None, help='weight of samples in the denominator (default: 1.0)'))
PACO_TEMPERATURE = MethodFlag('--paco-temperature', 'temperature', dict(
    type=positive_float, default=None, help='contrast temperature (default: 0.2 for paco / gpaco, 0.07 for dscl)'))
PACO_QUEUE_SIZE = MethodFlag('--paco-queue-size', 'queue_size', dict(
    type=positive_int, default=8192, help='paco / dscl queue slots (default: 8192)'))
PACO_MOMENTUM = MethodFlag('--paco-momentum', 'momentum', dict(
    type=decay_rate, default=0.999, help='paco / dscl key encoder EMA decay (default: 0.999)'))

PAPER = Paper(
    'Cui et al., "Parametric Contrastive Learning", ICCV 2021',
    '@inproceedings{cui2021paco,\n  title={Parametric Contrastive Learning},\n'
    '  author={Cui, Jiequan and Zhong, Zhisheng and Liu, Shu and Yu, Bei and Jia, Jiaya},\n'
    '  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},\n'
    '  year={2021}\n}',
    code='https://github.com/dvlab-research/Parametric-Contrastive-Learning')


def paco_loss_weights(context: TaskContext, alpha, beta, gamma, temperature):
    """The PaCo / GPaCo loss keywords: the given weights, smoothing and the class prior when it is on."""
    return dict(**given(alpha=alpha, beta=beta, gamma=gamma, temperature=temperature),
                **context.smoothing_kwargs(), **context.prior_kwargs())


def describe_paco(flags, queue_flag: str) -> str:
    """The loss column of the paper-recipe table."""
    return (f"alpha {flags['paco_alpha']:g}, T {flags['paco_temperature']:g}, queue {flags.get(queue_flag)}, "
            f"smoothing {flags.get('smoothing', 0):g}")


def _build(context: TaskContext, alpha=None, beta=None, gamma=None, temperature=None, queue_size=None,
           momentum=0.999):
    criterion = PaCoLoss(context.num_classes, **paco_loss_weights(context, alpha, beta, gamma, temperature))
    return PaCoTask(context.model, criterion, momentum=momentum, projector=context.projector,
                    **given(queue_size=queue_size), **context.common())


def _quickstart_flags(budget):
    # the authors' CIFAR-100-LT ResNet-32 loss settings (paco_cifar.py), the small-data setting closest to it
    return ['--paco-alpha', '0.01', '--paco-temperature', '0.05', '--paco-queue-size', str(budget['paco_queue_size']),
            '--paco-momentum', str(budget['paco_momentum'])]


PACO = register_method(Method(
    name='paco', summary='PaCo (Parametric Contrastive Learning)', label='PaCo', build=_build, paper=PAPER,
    flags=(PACO_ALPHA, PACO_BETA, PACO_GAMMA, PACO_TEMPERATURE, PACO_QUEUE_SIZE, PACO_MOMENTUM),
    views=CONTRASTIVE_VIEWS, num_views=2, prior='logit-adjust', key_encoder=True, projector=True,
    tags=('paco', 'contrastive-learning'),
    quickstart=Quickstart(model='paco_resnet32', flags=_quickstart_flags),
    describe=lambda flags: describe_paco(flags, 'paco_queue_size')))
