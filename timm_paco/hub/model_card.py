"""Model card (README.md with Hub metadata) for an exported PaCo / GPaCo checkpoint."""
import csv
import json
import os
from typing import Any, Dict, List, Optional

from timm_paco.methods import Method, default_method, get_method, import_method_modules, is_method

__all__ = ['read_results', 'hyper_parameters', 'model_card']

# results-file key -> row label, in the order shown
RESULT_ROWS = (
    ('top1', 'Top-1 accuracy (%)'),
    ('top5', 'Top-5 accuracy (%)'),
    ('many_acc', 'Many-shot top-1 (%)'),
    ('medium_acc', 'Medium-shot top-1 (%)'),
    ('few_acc', 'Few-shot top-1 (%)'),
)

# training arguments shown on the card, when the checkpoint recorded them
HPARAM_KEYS = (
    'task', 'dataset', 'imb_factor', 'num_classes', 'epochs', 'batch_size', 'opt', 'lr', 'momentum',
    'weight_decay', 'sched', 'warmup_epochs', 'warmup_lr', 'input_size', 'img_size', 'aa', 'mixup', 'cutmix',
    'smoothing', 'model_ema', 'model_ema_decay', 'seed',
)


def read_results(path: str) -> Dict[str, float]:
    """Metrics from validate.py's ``--results-file`` (``--results-format json``, or the default csv) for one model:
    numeric ``top1``, ``top5`` and, when class counts were known, ``many_acc`` / ``medium_acc`` / ``few_acc``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"results_file '{path}' does not exist")
    with open(path, encoding='utf-8', newline='') as f:
        if path.endswith('.csv'):
            results = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
        else:
            try:
                results = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"results_file '{path}' is neither .csv nor JSON: {e}") from e
    if isinstance(results, list):
        if len(results) != 1:
            raise ValueError(f"results_file '{path}' holds {len(results)} results, expected the one exported model's")
        results = results[0]
    if not isinstance(results, dict) or not isinstance(results.get('top1'), (int, float)):
        raise ValueError(f"results_file '{path}': expected validate.py results with a numeric 'top1'")
    return {k: float(results[k]) for k, _ in RESULT_ROWS if isinstance(results.get(k), (int, float))}


def _number(text: str) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def hyper_parameters(args: Dict[str, Any]) -> Dict[str, Any]:
    """The training arguments worth reporting: the fixed list above plus every ``paco_*`` / ``gpaco_*`` flag."""
    keys = list(HPARAM_KEYS) + sorted(k for k in args if k.startswith(('paco_', 'gpaco_')))
    return {k: args[k] for k in keys if args.get(k) not in (None, '', [], False)}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f'{v:.6g}'
    if isinstance(v, (list, tuple)):
        return ' '.join(str(x) for x in v)
    return str(v)


def _front_matter(method: Method, license: str, dataset_name: Optional[str], repo_name: str) -> List[str]:
    """The Hub's YAML metadata (tags, library, pipeline, licence, dataset) and the title."""
    tags: List[str] = ['image-classification', 'timm', 'long-tail-learning'] + list(method.tags)
    lines = ['---', 'tags:'] + [f'- {t}' for t in tags]
    lines += ['library_name: timm', 'pipeline_tag: image-classification', f'license: {license}']
    if dataset_name:
        lines += ['datasets:', f'- {dataset_name.lower()}']
    return lines + ['---', f'# Model card for {repo_name}', '']


def _loading_note(form: str, plugin_architecture: bool, has_projector: bool) -> List[str]:
    """What loads these weights (plain timm or the plugin) and where the projector is."""
    if form == 'paco':
        lines = ['These weights are the plain timm model under its `timm_paco` name (with that name\'s pretrained '
                 'configs); loading needs `pip install timm-paco` and `import timm_paco`.']
    elif plugin_architecture:
        lines = ['These weights are the inference model as an architecture that `timm_paco` registers (timm has none '
                 'like it); loading needs `pip install timm-paco` and `import timm_paco`.']
    else:
        lines = ['These weights are the inference model as a stock timm architecture: plain `timm` loads them, '
                 'without the plugin.']
    if has_projector:
        lines.append(
            '\nThe training projection head is beside them in `projector.safetensors`, for the contrastive '
            'embeddings: `module = timm_paco.tasks.attach_projector(model, folder)`, then '
            '`logits, embeddings = module(x)`.')
    return lines


def _results_section(results: Optional[Dict[str, float]], results_source: Optional[str],
                     dataset_name: Optional[str]) -> List[str]:
    if not results:
        return []
    lines = ['', '## Results', '']
    if results_source:
        lines += [f'From {results_source}.', '']
    elif dataset_name:
        lines += [f'Evaluated with `validate.py` on the {dataset_name} evaluation split.', '']
    lines += ['| metric | value |', '|---|---|']
    return lines + [f'| {label} | {results[k]:.2f} |' for k, label in RESULT_ROWS if k in results]


def _usage(repo_name: str, needs_plugin: bool) -> List[str]:
    lines = ['', '## Model Usage', '', '```python', 'import timm']
    if needs_plugin:
        lines.append('import timm_paco  # registers the PaCo architectures')
    return lines + [
        '',
        f"model = timm.create_model('hf-hub:{repo_name}', pretrained=True).eval()",
        'data_config = timm.data.resolve_model_data_config(model)',
        'transform = timm.data.create_transform(**data_config, is_training=False)',
        'logits = model(transform(img).unsqueeze(0))  # img: a PIL image',
        '```',
    ]


def card_method(args: Dict[str, Any], default_task: Optional[str] = None) -> Method:
    """The method a checkpoint was trained with: its ``args`` ``task`` (the modules of its ``method_modules``
    imported first, a method from outside the package), else ``default_task`` (a zoo name's recipe), else the
    default; ValueError naming the task when it is not registered."""
    import_method_modules(args.get('method_modules') or ())
    task = args.get('task') or default_task
    if task is None:
        return default_method()
    if not is_method(task):
        raise ValueError(f'task {task!r} of the checkpoint is not a registered method; import the module that '
                         f'registers it (train.py --method-modules, or an installed timm_paco.methods entry point)')
    return get_method(task)


def model_card(
        repo_name: str,
        architecture: str,
        form: str,
        args: Dict[str, Any],
        results: Optional[Dict[str, float]] = None,
        param_count: Optional[int] = None,
        ema: bool = False,
        epoch: Optional[int] = None,
        default_task: Optional[str] = None,
        plugin_architecture: bool = False,
        license: str = 'apache-2.0',
        license_source: Optional[str] = None,
        has_projector: bool = False,
        results_source: Optional[str] = None,
) -> str:
    """README.md text: Hub metadata, method, dataset, hyper-parameters, results, usage and citation.

    ``form``: ``'timm'`` (the stock timm architecture; loads without the plugin unless ``plugin_architecture``, an
    architecture only timm_paco registers) or ``'paco'`` (the same weights under the registered PaCo name, needs
    ``import timm_paco``). ``license``: the card's licence, ``license_source`` the sentence saying where it comes
    from (``timm_paco.hub.license.card_license``). ``has_projector``: the folder holds ``projector.safetensors``. ``results_source``: where the results come
    from, when not from validate.py (a zoo checkpoint's reported top-1).
    """
    trained_with = card_method(args, default_task)
    method, paper = trained_with.summary, trained_with.paper
    dataset = args.get('dataset') or None
    dataset_name = dataset.split('/', 1)[-1] if dataset else None
    lines = _front_matter(trained_with, license, dataset_name, repo_name)

    trained_on = f' on {dataset_name}' if dataset_name else ''
    if args.get('imb_factor'):
        trained_on += f' (long-tailed, imbalance factor {_fmt(args["imb_factor"])})'
    lines.append(f'A `{architecture}` image classifier trained with {method}{trained_on}.')
    if paper:
        lines += ['', f'Method: {paper.citation}.']
    lines.append('')
    lines += _loading_note(form, plugin_architecture, has_projector)

    lines += ['', '## Model Details', '- **Model type:** image classification', f'- **Architecture:** `{architecture}`',
              f'- **Method:** {method}']
    if dataset_name:
        lines.append(f'- **Dataset:** {dataset_name}')
    if param_count is not None:
        lines.append(f'- **Params (M):** {param_count / 1e6:.2f}')
    lines.append(f'- **License:** {license}' + (f' ({license_source})' if license_source else ''))
    lines.append(f'- **Weights:** {"EMA of the model weights" if ema else "model weights"}'
                 + (f', epoch {epoch}' if epoch is not None else ''))
    hparams = hyper_parameters(args)
    if hparams:
        lines += ['', '## Training hyper-parameters', '', '| argument | value |', '|---|---|']
        lines += [f'| `{k}` | {_fmt(v)} |' for k, v in hparams.items()]
    lines += _results_section(results, results_source, dataset_name)
    lines += _usage(repo_name, form == 'paco' or plugin_architecture)
    if paper and paper.bibtex:
        lines += ['', '## Citation', '', '```bibtex', paper.bibtex, '```']
    return '\n'.join(lines) + '\n'
