"""The Fashion-MNIST-LT benchmark's grid (``timm_paco.runs.benchmark``): each method's settings (prior τ, label
smoothing), their run names and train.py flags, the choice of a setting on the validation split, and the checks that
let ``--resume`` reuse a run only when it was trained with this invocation's recipe."""
import argparse
import hashlib
import json
import os
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from timm_paco.methods import get_method
from timm_paco.runs.recipes import first_task, method_flags, run_names, second_stages

DEFAULT_N_VAL = 200


def derived_runs() -> List[str]:
    """Runs built on another method's run of the same seed (CE's, at its selected setting): a second stage on its
    checkpoint, or a post-hoc change of its classifier; they have no setting of their own to tune."""
    return [t for t in run_names() if first_task(t) != t]


def prior_runs() -> List[str]:
    """The methods train.py ``--prior-tau`` applies to (a class prior)."""
    return [t for t in run_names() if first_task(t) == t and get_method(t).prior != 'none']


def method_smoothing(task: str) -> float:
    """train.py's label smoothing of ``task``'s (first) method."""
    return get_method(first_task(task)).smoothing or 0.0


Setting = Tuple[float, float]  # (prior tau, label smoothing) of one run


def default_setting(task: str) -> Setting:
    """train.py's own setting for ``task``: prior strength 1 and the task's label smoothing (a derived method's:
    its first task's)."""
    return 1.0, method_smoothing(task)


def budget_stem(budget: str, epochs: Optional[int]) -> str:
    """File stem of a budget's docs and default run folder: ``lt_fashion_mnist[_large][_e<epochs>]``."""
    return 'lt_fashion_mnist' + ('_large' if budget == 'large' else '') + (f'_e{epochs}' if epochs is not None else '')


_SETTING_KEYS = (('tau', '--prior-tau'), ('ls', '--smoothing'))  # per Setting field: run-name tag, train.py flag


def _overrides(task: str, setting: Setting) -> List[Tuple[str, str, float]]:
    """(run-name tag, train.py flag, value) of each field of ``setting`` that differs from ``default_setting``."""
    return [(tag, flag, value) for (tag, flag), value, default in zip(_SETTING_KEYS, setting, default_setting(task))
            if value != default]


def experiment_name(task: str, setting: Setting, seed: int) -> str:
    """Run folder name ``<task>-seed<seed>``, with ``-tau<tau>`` / ``-ls<smoothing>`` where they differ from
    ``default_setting(task)`` (so runs of the default recipe keep their names)."""
    return task + ''.join(f'-{tag}{value:g}' for tag, _, value in _overrides(task, setting)) + f'-seed{seed}'


def setting_flags(task: str, setting: Setting) -> List[str]:
    """train.py flags for ``setting``: ``--prior-tau`` / ``--smoothing`` where the run name carries them."""
    return [arg for _, flag, value in _overrides(task, setting) for arg in (flag, f'{value:g}')]


def _flag_values(flags: Sequence[str], fields: Dict) -> Dict:
    """The values ``flags`` (train.py arguments) give to ``fields`` (name -> a value of its type); the last
    occurrence wins, as in train.py. Other flags are ignored."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for key, value in fields.items():
        names = ['--' + key.replace('_', '-')] + (['-b'] if key == 'batch_size' else [])
        if isinstance(value, list):
            parser.add_argument(*names, dest=key, type=type(value[0]), nargs=len(value))
        else:
            parser.add_argument(*names, dest=key, type=type(value))
    known, _ = parser.parse_known_args(list(flags))
    return {key: value for key, value in vars(known).items() if value is not None}


def own_flag_values(method: str, recipe: Dict) -> Dict:
    """The train.py values of ``method``'s own quick-start flags at ``recipe`` (``--paco-queue-size 256`` ->
    ``paco_queue_size=256``), as args.yaml records them."""
    from timm_paco.cli.train_args import build_parser
    flags = method_flags(method, recipe)
    parsed = vars(build_parser()[1].parse_known_args(flags)[0])
    given = {flag.lstrip('-').replace('-', '_') for flag in flags if flag.startswith('--')}
    return {k: v for k, v in parsed.items() if k in given}


def recipe_mismatches(train_args: Dict, task: str, setting: Setting, seed: int, recipe: Dict,
                      train_flags: Sequence[str] = ()) -> List[str]:
    """``key=<trained> (this run: <wanted>)`` for each recipe field where a run's args.yaml (``train_args``) differs
    from what this invocation would train: the recipe, then ``train_flags`` (``--train-flags``), then the
    setting's flags, the order they reach train.py in."""
    wanted = dict(task=task, seed=seed, epochs=recipe['epochs'], batch_size=recipe['batch_size'], lr=recipe['lr'],
                  weight_decay=recipe['weight_decay'], warmup_epochs=recipe['warmup_epochs'],
                  img_size=recipe['img_size'], scale=list(recipe['scale']), paco_views=recipe['views'],
                  smoothing=setting[1])
    if task in prior_runs():
        wanted['prior_tau'] = setting[0]
    wanted.update(own_flag_values(first_task(task), recipe))
    wanted.update(_flag_values(list(train_flags) + setting_flags(task, setting), wanted))
    trained = dict(train_args)
    for key, default in zip(('prior_tau', 'smoothing'), default_setting(task)):
        if trained.get(key) is None:  # earlier releases' args.yaml kept flags as given: None is train.py's default
            trained[key] = default
    return [f'{k}={trained.get(k)!r} (this run: {v!r})' for k, v in wanted.items() if trained.get(k) != v]


def check_reused_run(train_dir: str, task: str, setting: Setting, seed: int, recipe: Dict,
                     train_flags: Sequence[str] = ()):
    """Refuse to reuse (``--resume``) a run trained with another recipe: run names do not hold the budget. A
    two-stage method's recipe is its first stage's (``<run>-stage1``)."""
    path = os.path.join(train_dir + ('-stage1' if task in second_stages() else ''), 'args.yaml')
    try:
        with open(path) as f:
            train_args = yaml.safe_load(f)
    except OSError as e:
        raise FileNotFoundError(f'--resume: {path} is missing, so the run cannot be checked ({e})') from e
    wrong = recipe_mismatches(train_args or {}, task, setting, seed, recipe, train_flags)
    if wrong:
        raise ValueError(f'--resume: {path} was trained with {", ".join(wrong)}; give this budget its own --output '
                         f'or delete the run')


def select_setting(task: str, val_top1: Dict[Setting, Sequence[float]]) -> Setting:
    """The setting with the best mean validation accuracy over seeds; a tie goes to ``default_setting(task)``."""
    default = default_setting(task)
    return max(val_top1, key=lambda setting: (statistics.fmean(val_top1[setting]), setting == default))


def read_summary(path: str, arg: str = '--settings-from') -> Dict:
    """A summary.json this script wrote; errors name ``arg``, the flag that pointed at it."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{arg} {path}: cannot read it as JSON ({e})') from e
    if not isinstance(data, dict) or not isinstance(data.get('summary'), dict):
        raise ValueError(f'{arg} {path}: no "summary" mapping (not a summary.json of this script)')
    return data


def read_selected_settings(path: str, tasks: Sequence[str], arg: str = '--settings-from') -> Dict[str, Setting]:
    """Each task's selected (prior tau, smoothing) in a summary.json this script wrote (tau 1 for CE)."""
    summary = read_summary(path, arg)['summary']
    settings = {}
    for task in tasks:
        entry = summary.get(task)
        if not isinstance(entry, dict) or 'smoothing' not in entry:
            raise ValueError(f'{arg} {path}: no selected setting for task {task!r} '
                             f'(it has {sorted(summary)})')
        tau = entry.get('prior_tau')
        settings[task] = (1.0 if tau is None else float(tau), float(entry['smoothing']))
    return settings


def data_dirs(output: str, n_max: int, n_test: Optional[int], n_val: int) -> Tuple[str, str]:
    """(training + test data folder, validation data folder) of a benchmark's ``--output``."""
    data = os.path.join(output, 'data', f'fashion_mnist_nmax{n_max}')
    return data + (f'_test{n_test}' if n_test else ''), f'{data}_val{n_val}'


RUN_TIME_FILE = 'run_time.json'


def write_run_seconds(train_dir: str, seconds: float) -> float:
    """Record a run's own time (train + both validations, seconds) in its folder, for a later ``--resume``."""
    with open(os.path.join(train_dir, RUN_TIME_FILE), 'w') as f:
        json.dump({'seconds': round(seconds, 1)}, f)
    return seconds


def read_run_seconds(train_dir: str) -> Optional[float]:
    """A reused run's recorded time in seconds, or None for a run from before the time was recorded."""
    path = os.path.join(train_dir, RUN_TIME_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return float(json.load(f)['seconds'])


def file_sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


FIRST_STAGE_FILE = 'first_stage.json'  # a derived run's record of the checkpoint it was built on


def check_derived_base(train_dir: str, checkpoint: str):
    """Refuse to reuse (``--resume``) a derived run built on another checkpoint than ``checkpoint`` (its first
    stage retrained since, or another setting's)."""
    path = os.path.join(train_dir, FIRST_STAGE_FILE)
    try:
        with open(path) as f:
            recorded = json.load(f)['sha256']
    except (OSError, ValueError, KeyError) as e:
        raise FileNotFoundError(f'--resume: {path} is missing or unreadable, so the run cannot be checked ({e})') from e
    if recorded != file_sha256(checkpoint):
        raise ValueError(f'--resume: {train_dir} was built on another checkpoint than {checkpoint} (retrained since?); '
                         f'delete the run')


def chosen_tau(train_dir: str) -> float:
    """The tau a post-hoc tau-norm run chose on the validation split (its ``tau_norm.json``)."""
    with open(os.path.join(train_dir, 'tau_norm.json')) as f:
        return float(json.load(f)['tau'])
