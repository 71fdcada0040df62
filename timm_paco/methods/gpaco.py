"""GPaCo (Cui et al., TPAMI 2023): PaCo with both views as anchors, no key encoder, a queue of earlier
embeddings and label smoothing 0.1 (its full-ImageNet and ViT value); ResNets to ViTs."""
from timm_paco.arg_types import non_negative_int
from timm_paco.losses import GPaCoLoss
from timm_paco.tasks import GPACO_QUEUE_SIZE, GPaCoTask

from .method import Method, MethodFlag, Paper, Quickstart, TaskContext, given
from .paco import (
    CONTRASTIVE_VIEWS, PACO_ALPHA, PACO_BETA, PACO_GAMMA, PACO_TEMPERATURE, describe_paco, paco_loss_weights,
)
from .registry import register_method

__all__ = ['GPACO', 'GPACO_QUEUE']

GPACO_QUEUE = MethodFlag('--gpaco-queue-size', 'queue_size', dict(
    type=non_negative_int, default=GPACO_QUEUE_SIZE,
    help=f'gpaco queue of earlier embeddings, slots (default: {GPACO_QUEUE_SIZE}, every one of the authors\' '
         f'scripts; their CIFAR script 1024; 0 = none)'))


def _build(context: TaskContext, alpha=None, beta=None, gamma=None, temperature=None, queue_size=None):
    criterion = GPaCoLoss(context.num_classes, **paco_loss_weights(context, alpha, beta, gamma, temperature))
    return GPaCoTask(context.model, criterion, num_views=context.views(2), projector=context.projector,
                     **given(queue_size=queue_size), **context.common())


def _quickstart_flags(budget):
    # the authors' CIFAR-100-LT ResNet-32 loss settings (GPaCo's paco_cifar.py)
    return ['--paco-alpha', '0.01', '--paco-temperature', '0.07', '--gpaco-queue-size', str(budget['paco_queue_size'])]


GPACO = register_method(Method(
    name='gpaco', summary='GPaCo (Generalized Parametric Contrastive Learning)', label='GPaCo', build=_build,
    paper=Paper(
        'Cui et al., "Generalized Parametric Contrastive Learning", IEEE TPAMI 2023',
        '@article{cui2023gpaco,\n  title={Generalized Parametric Contrastive Learning},\n'
        '  author={Cui, Jiequan and Zhong, Zhisheng and Tian, Zhuotao and Liu, Shu and Yu, Bei and Jia, Jiaya},\n'
        '  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},\n'
        '  year={2023}\n}',
        code='https://github.com/dvlab-research/Parametric-Contrastive-Learning'),
    flags=(PACO_ALPHA, PACO_BETA, PACO_GAMMA, PACO_TEMPERATURE, GPACO_QUEUE), smoothing=0.1, views=CONTRASTIVE_VIEWS,
    prior='logit-adjust', projector=True, tags=('gpaco', 'contrastive-learning'),
    quickstart=Quickstart(model='paco_resnet32', flags=_quickstart_flags),
    describe=lambda flags: describe_paco(flags, 'gpaco_queue_size')))
