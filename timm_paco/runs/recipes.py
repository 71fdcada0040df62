"""The Fashion-MNIST-LT recipes: the long tail, the many / few-shot thresholds, the model of each task and the
train.py flags shared by every method (``RECIPE``), with the smoke-test (``TINY_*``) and larger (``LARGE_*``)
budgets."""

__all__ = [
    'IMB_FACTOR', 'DEFAULT_N_MAX', 'MANY_SHOT_THR', 'FEW_SHOT_THR', 'NUM_CLASSES', 'TASK_MODELS', 'RECIPE',
    'TASK_FLAGS', 'SECOND_STAGE', 'POSTHOC', 'TAU_NORM_GRID', 'first_task', 'TINY_N_MAX', 'TINY_N_TEST', 'TINY_RECIPE',
    'LARGE_N_MAX', 'LARGE_RECIPE',
]

IMB_FACTOR = 0.01
DEFAULT_N_MAX = 300
MANY_SHOT_THR = 100
FEW_SHOT_THR = 20
NUM_CLASSES = 10

# task -> model: the CE family trains the plain backbone, PaCo / GPaCo / DSCL the same backbone with a projector
TASK_MODELS = {
    'ce': 'resnet32_cifar',
    'balanced-softmax': 'resnet32_cifar',
    'paco': 'paco_resnet32',
    'gpaco': 'paco_resnet32',
    'dscl': 'dscl_resnet32',
    'focal': 'resnet32_cifar',
    'class-balanced': 'resnet32_cifar',
    'ldam-drw': 'resnet32_cifar',
    'ce-crt': 'resnet32_cifar',
    'ce-lws': 'resnet32_cifar',
}

# Shared by every method: same backbone, input, views (two augmented views of each image), optimiser,
# schedule, batch size and epochs. Values are train.py flags. The optimiser is the papers': plain momentum SGD
# (timm's 'momentum', not its Nesterov 'sgd') with weight decay on every parameter (--wd-bias-and-norm). The
# queue size is PaCo's, DSCL's and GPaCo's alike.
RECIPE = dict(
    opt='momentum',
    epochs=20,
    batch_size=32,
    lr=0.03,
    weight_decay=5e-4,
    warmup_epochs=1,
    img_size=16,
    scale=(0.35, 1.0),
    views='randcls_sim',
    paco_queue_size=256,
    paco_momentum=0.9,
    log_interval=10,
)
# Loss settings of the contrastive methods: the papers' own CIFAR-100-LT ResNet-32 recipe (PaCo's and GPaCo's
# paco_cifar.py scripts: alpha 0.01, beta 1, gamma 1, temperature 0.05 for PaCo and 0.07 for GPaCo), the
# small-data setting closest to this one; their ImageNet defaults (alpha 0.05, temperature 0.2) are the flags'.
# DSCL keeps its own loss settings (alpha 1/9, temperature 0.07, PBSD weight 1.5, 5 patches, area 0.05-0.6); its
# patch side scales with the view as the paper's 64 px of a 224-px view: 8 px of these 16-px views.
TASK_FLAGS = {
    'paco': ['--paco-alpha', '0.01', '--paco-temperature', '0.05'],
    'gpaco': ['--paco-alpha', '0.01', '--paco-temperature', '0.07'],
    'dscl': ['--pbsd-patch-size', '8'],
}
# Two-stage methods: the second stage's train.py flags after a first stage of ``first_task``. The paper's cRT for
# DSCL (Kang et al.'s recipe: class-balanced sampling, a re-initialised classifier on the frozen stage-1 model,
# plain CE, no weight decay; its lr 10 at batch 2048 scales linearly to 0.15 at this batch 32), for half the first
# stage's epochs; CE + cRT and CE + LWS (one learnt scale per class of the kept classifier) retrain a CE model the
# same way.
_RETRAIN_FLAGS = ['--sampler', 'class-balanced', '--smoothing', '0', '--lr', '0.15', '--weight-decay', '0',
                  '--warmup-epochs', '0']
SECOND_STAGE = {
    'dscl': dict(first_task='dscl', epochs_fraction=0.5, flags=['--classifier-retrain', 'crt'] + _RETRAIN_FLAGS),
    'ce-crt': dict(first_task='ce', epochs_fraction=0.5, flags=['--classifier-retrain', 'crt'] + _RETRAIN_FLAGS),
    'ce-lws': dict(first_task='ce', epochs_fraction=0.5, flags=['--classifier-retrain', 'lws'] + _RETRAIN_FLAGS),
}
# Post-hoc methods: no training of their own, a change to a ``first_task`` model's classifier chosen on a
# validation split (the benchmark's). CE + tau-norm: w_c / ||w_c||^tau, tau from TAU_NORM_GRID.
POSTHOC = {'ce-tau-norm': dict(first_task='ce')}
TAU_NORM_GRID = tuple(round(0.1 * i, 1) for i in range(21))  # 0 (as trained) .. 2


def first_task(method: str) -> str:
    """train.py ``--task`` of ``method``'s (first) training run: its own name for a one-stage method."""
    return {**SECOND_STAGE, **POSTHOC}.get(method, {}).get('first_task', method)


# smoke tests (--tiny): 200 .. 2 training images per class still populate many / medium / few
TINY_N_MAX = 200
TINY_N_TEST = 20
TINY_RECIPE = dict(RECIPE, epochs=1, batch_size=64, warmup_epochs=0, paco_queue_size=64, log_interval=2)
# the benchmark's larger budget (a GPU run of minutes): native 28 px, 1,000 images in the largest class,
# CIFAR's usual batch 128 / lr 0.1, 60 epochs; PaCo's queue and key-encoder momentum scaled to it
LARGE_N_MAX = 1000
LARGE_RECIPE = dict(RECIPE, epochs=60, batch_size=128, lr=0.1, warmup_epochs=3, img_size=28, paco_queue_size=1024,
                    paco_momentum=0.99, log_interval=20)
