"""The Fashion-MNIST-LT recipes: the long tail, the many / few-shot thresholds, the train.py flags shared by every
method (``RECIPE``) with the smoke-test (``TINY_*``) and larger (``LARGE_*``) budgets, and the runs: each
registered method's quick-start recipe (its model and flags, ``timm_paco.methods.Quickstart``) and the runs derived
from them (second stages, post-hoc)."""

from typing import Dict, List

from timm_paco.methods import default_method, get_method, list_methods
from timm_paco.tasks.classifier_retrain import RETRAIN_MODES

__all__ = [
    'IMB_FACTOR', 'DEFAULT_N_MAX', 'MANY_SHOT_THR', 'FEW_SHOT_THR', 'NUM_CLASSES', 'RECIPE', 'RETRAIN_FLAGS',
    'TAU_NORM_GRID', 'second_stages', 'posthoc_runs', 'run_names', 'first_task', 'run_model', 'method_flags',
    'run_label',
    'TINY_N_MAX', 'TINY_N_TEST', 'TINY_RECIPE', 'LARGE_N_MAX', 'LARGE_RECIPE',
]

IMB_FACTOR = 0.01
DEFAULT_N_MAX = 300
MANY_SHOT_THR = 100
FEW_SHOT_THR = 20
NUM_CLASSES = 10

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
# Each method's model and own flags on this data are its Quickstart (timm_paco.methods): the contrastive methods
# take their papers' CIFAR-100-LT ResNet-32 loss settings (the small-data setting closest to this one), DSCL its
# own. Two-stage runs: a classifier retrained after a first stage, with Kang et al.'s cRT recipe (class-balanced
# sampling, plain CE, no weight decay; its lr 10 at batch 2048 scales linearly to 0.15 at this batch 32), for half
# the first stage's epochs: a method whose Quickstart names a second stage (DSCL's cRT), and the baseline's cRT
# and LWS (one learnt scale per class of the kept classifier). Post-hoc runs: no training of their own, a change
# to the baseline's classifier chosen on a validation split (the benchmark's): tau-norm, w_c / ||w_c||^tau, tau
# from TAU_NORM_GRID.
RETRAIN_FLAGS = ['--sampler', 'class-balanced', '--smoothing', '0', '--lr', '0.15', '--weight-decay', '0',
                 '--warmup-epochs', '0']
SECOND_STAGE_FRACTION = 0.5
TAU_NORM_GRID = tuple(round(0.1 * i, 1) for i in range(21))  # 0 (as trained) .. 2


def _stage(first: str, mode: str) -> Dict:
    return dict(first_task=first, epochs_fraction=SECOND_STAGE_FRACTION,
                flags=['--classifier-retrain', mode] + RETRAIN_FLAGS)


def second_stages() -> Dict[str, Dict]:
    """Run name -> its second stage: ``first_task`` (the method of the first), ``epochs_fraction`` and ``flags``."""
    stages = {name: _stage(name, get_method(name).quickstart.second_stage) for name in _quickstart_methods()
              if get_method(name).quickstart.second_stage}
    base = default_method().name
    stages.update({f'{base}-{mode}': _stage(base, mode) for mode in RETRAIN_MODES})
    return stages


def posthoc_runs() -> Dict[str, Dict]:
    """Run name -> the method whose checkpoint a post-hoc classifier change (tau-norm) starts from."""
    return {f'{default_method().name}-tau-norm': dict(first_task=default_method().name)}


def _quickstart_methods() -> List[str]:
    return [name for name in list_methods() if get_method(name).quickstart is not None]


def run_names() -> List[str]:
    """Every run of the quick start and the benchmark: each method with a quick-start recipe, then the derived
    runs (second stages and post-hoc) of the baseline."""
    return _quickstart_methods() + [n for n in list(second_stages()) + list(posthoc_runs()) if n not in list_methods()]


def first_task(run: str) -> str:
    """train.py ``--task`` of ``run``'s (first) training run: its own name for a one-stage method."""
    return {**second_stages(), **posthoc_runs()}.get(run, {}).get('first_task', run)


def run_model(run: str) -> str:
    """The model ``run`` trains (its first stage's method's quick-start model)."""
    return get_method(first_task(run)).quickstart.model


def method_flags(method: str, budget: Dict) -> List[str]:
    """``method``'s own train.py flags in the quick-start recipe at ``budget``."""
    return list(get_method(method).quickstart.flags(budget))


# smoke tests (--tiny): 200 .. 2 training images per class still populate many / medium / few
TINY_N_MAX = 200
TINY_N_TEST = 20
TINY_RECIPE = dict(RECIPE, epochs=1, batch_size=64, warmup_epochs=0, paco_queue_size=64, log_interval=2)
# the benchmark's larger budget (a GPU run of minutes): native 28 px, 1,000 images in the largest class,
# CIFAR's usual batch 128 / lr 0.1, 60 epochs; PaCo's queue and key-encoder momentum scaled to it
LARGE_N_MAX = 1000
LARGE_RECIPE = dict(RECIPE, epochs=60, batch_size=128, lr=0.1, warmup_epochs=3, img_size=28, paco_queue_size=1024,
                    paco_momentum=0.99, log_interval=20)


_STAGE_LABELS = {'crt': 'cRT', 'lws': 'LWS', 'tau-norm': 'τ-norm'}


def run_label(run: str) -> str:
    """``run``'s name in tables: its method's label, a derived run's as 'CE + cRT'."""
    first = first_task(run)
    if first == run:
        return get_method(run).label
    return f'{get_method(first).label} + {_STAGE_LABELS.get(run[len(first) + 1:], run[len(first) + 1:])}'
