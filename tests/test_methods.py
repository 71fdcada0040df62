"""The method registry: what it holds, that nothing else names a method, and methods from outside the package
(a module imported by ``--method-modules``, and an installed package's ``timm_paco.methods`` entry point) trained,
resumed, validated, exported, and offered by the quick start and the benchmark."""
import ast
import json
import os
import subprocess
import sys

import pytest
import torch

from timm_paco.methods import Method, get_method, list_methods, register_method
from _cli import REPO, TRAIN, VALIDATE, run_here

BUILT_IN = ['ce', 'balanced-softmax', 'paco', 'gpaco', 'dscl', 'focal', 'class-balanced', 'ldam-drw', 'bcl']

# String constants equal to a method name that are names in another namespace: a loss's registry name
# (``register_loss``), a sampler, the segmentation losses, the corruption error of validate.py's robustness
# metrics, timm's --loss type, the Hub export form, the registered models' name prefixes and their paper's method
# (``PaperRecipe(task=...)``); and the two task classes that name their method in their messages.
OTHER_NAMESPACES = {
    'timm_paco/data/samplers.py': {'class-balanced'}, 'timm_paco/runs/recipes.py': {'class-balanced'},
    'timm_paco/seg/train.py': {'ce'},
    'timm_paco/models/paco_resnet.py': {'paco', 'gpaco'},
    'timm_paco/tasks/paco.py': {'paco'}, 'timm_paco/tasks/dscl.py': {'dscl'},
    'timm_paco/seg/args.py': {'ce'}, 'timm_paco/seg/quickstart.py': {'ce'}, 'timm_paco/seg/quickstart_docs.py': {'ce'},
    'timm_paco/seg/task.py': {'ce'}, 'timm_paco/data/ood.py': {'ce'}, 'timm_paco/cli/validate_eval.py': {'ce'},
    'timm_paco/hub/export.py': {'paco'}, 'timm_paco/hub/__main__.py': {'paco'},
    'timm_paco/hub/model_card.py': {'paco'}, 'timm_paco/cli/train_loss.py': {'ce'},
}


def _calls_register_loss(node, parents) -> bool:
    parent = parents.get(node)
    return isinstance(parent, ast.Call) and getattr(parent.func, 'id', None) == 'register_loss'


def _is_paper_recipe_task(node, parents) -> bool:
    parent = parents.get(node)
    return isinstance(parent, ast.keyword) and parent.arg == 'task' and getattr(
        parents.get(parent).func, 'id', None) == 'PaperRecipe'


def _method_literals(path, names):
    tree = ast.parse(open(path, encoding='utf-8').read())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names
            and not _calls_register_loss(node, parents) and not _is_paper_recipe_task(node, parents)]


def test_the_registry_holds_every_method_in_order():
    assert list_methods() == BUILT_IN + [n for n in list_methods() if n not in BUILT_IN]
    assert list_methods('*paco') == ['paco', 'gpaco']
    with pytest.raises(ValueError, match=r"^task: unknown task 'moco'; expected one of ce, balanced-softmax"):
        get_method('moco')
    with pytest.raises(ValueError, match="method name 'paco' is already registered"):
        register_method(Method(name='paco', summary='another', build=lambda context: None))
    with pytest.raises(ValueError, match='method: expected a timm_paco.methods.Method, got dict'):
        register_method({'name': 'x'})
    paco = get_method('paco')
    assert (paco.num_views, paco.key_encoder, paco.projector, paco.prior) == (2, True, True, 'logit-adjust')
    assert paco.options == ('alpha', 'beta', 'gamma', 'temperature', 'queue_size', 'momentum')
    assert [f.option for f in get_method('ldam-drw').flags] == ['--cb-beta', '--drw-epoch']


def test_no_method_name_is_written_outside_its_method_module():
    """A method's name appears only in its own module under timm_paco/methods/ (and docs and tests): train.py,
    validate.py, the package and the benchmarks read every method from the registry."""
    names = set(BUILT_IN)
    files = [os.path.join(REPO, f) for f in ('train.py', 'validate.py')]
    for top in ('timm_paco', 'benchmarks'):
        for folder, _, entries in os.walk(os.path.join(REPO, top)):
            files += [os.path.join(folder, e) for e in entries if e.endswith('.py')]
    found = []
    for path in files:
        rel = os.path.relpath(path, REPO).replace(os.sep, '/')
        if rel.startswith('timm_paco/methods/') or rel in ('benchmarks/bench_step.py', 'benchmarks/bench_loss.py'):
            continue  # the methods' own modules; the micro-benchmarks time named losses and tasks on purpose
        allowed = OTHER_NAMESPACES.get(rel, set())
        found += [f'{rel}:{line} {value!r}' for line, value in _method_literals(path, names) if value not in allowed]
    assert found == []
    # the check finds what it looks for
    probe = os.path.join(REPO, 'timm_paco', 'methods', 'paco.py')
    assert (0, 'paco') not in _method_literals(probe, names) and any(v == 'paco' for _, v in
                                                                      _method_literals(probe, names))


def _train_flags(image_folder, output, *extra):
    return ['--data-dir', image_folder, '--model', 'test_convnext', '--img-size', '32', '--num-classes', '4',
            '-b', '4', '--lr', '0.02', '--warmup-epochs', '0', '--device', 'cpu', '--workers', '0', '--seed', '0',
            '--no-prefetcher', '--output', str(output), *extra]


def test_a_method_from_a_module_trains_resumes_validates_and_exports(image_folder, tmp_path, capsys):
    flags = _train_flags(image_folder, tmp_path, '--method-modules', '_external_method', '--task', 'ext-scaled-ce',
                         '--ext-logit-scale', '3', '--epochs', '2')
    code, _, err = run_here(capsys, TRAIN + flags + ['--experiment', 'straight'])
    assert code == 0, err
    straight = torch.load(tmp_path / 'straight' / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert (straight['args'].task, straight['args'].ext_logit_scale, straight['args'].smoothing) == (
        'ext-scaled-ce', 3.0, 0.05)  # its flag, and its own default on the shared --smoothing
    assert straight['args'].method_modules == ['_external_method']
    code, _, err = run_here(capsys, TRAIN + flags + ['--experiment', 'resumed', '--resume',
                                                     str(tmp_path / 'straight' / 'checkpoint-0.pth.tar')])
    assert code == 0, err
    resumed = torch.load(tmp_path / 'resumed' / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert all(torch.equal(v, resumed['state_dict'][k]) for k, v in straight['state_dict'].items())
    code, _, err = run_here(capsys, VALIDATE + [
        '--data-dir', image_folder, '--split', 'validation', '--model', 'test_convnext', '--num-classes', '4',
        '--img-size', '32', '--device', 'cpu', '--workers', '0', '--checkpoint',
        str(tmp_path / 'straight' / 'last.pth.tar'), '--results-file', str(tmp_path / 'val.json'),
        '--results-format', 'json'])
    assert code == 0, err
    code, _, err = run_here(capsys, [sys.executable, '-m', 'timm_paco.hub', 'export',
                                     str(tmp_path / 'straight' / 'last.pth.tar'), str(tmp_path / 'hub')])
    assert code == 0, err
    card = (tmp_path / 'hub' / 'README.md').read_text()
    assert 'scaled cross-entropy (an external test method)' in card and 'A Method Outside The Package' in card


def test_a_method_module_that_is_missing_is_named(image_folder, tmp_path, capsys):
    code, out, err = run_here(capsys, TRAIN + _train_flags(image_folder, tmp_path, '--method-modules', 'no_such_mod',
                                                           '--experiment', 'x'))
    assert code == 2 and err.strip().splitlines()[-1].startswith(
        "train.py: error: --method-modules: No module named 'no_such_mod'")
    assert not (tmp_path / 'x').exists()


def test_the_quick_start_and_the_benchmark_offer_an_imported_method():
    from timm_paco.runs.benchmark import parse_args
    from timm_paco import quickstart
    from timm_paco.runs import run_label, run_names, train_command
    args = quickstart._parse_args(['--method-modules', '_external_method', '--task', 'ext-scaled-ce', '--tiny'])
    assert args.task == 'ext-scaled-ce' and 'ext-scaled-ce' in run_names() and run_label('ext-scaled-ce') == 'Scaled CE'
    argv = train_command('ext-scaled-ce', 'data', 'out', 'run')
    assert argv[argv.index('--task') + 1] == 'ext-scaled-ce'
    assert argv[argv.index('--model') + 1] == 'resnet32_cifar'
    assert argv[argv.index('--method-modules') + 1] == '_external_method'  # train.py imports it too
    bench = parse_args(['--method-modules', '_external_method', '--tasks', 'ext-scaled-ce', 'bcl',
                                          '--output', 'o', '--docs', 'd', '--tiny'])
    assert bench.tasks == ['ext-scaled-ce', 'bcl']


ENTRY_POINT_MODULE = '''
from timm_paco.methods import Method, get_method, register_method

ce = get_method('ce')
register_method(Method(name='ep-ce', summary='cross-entropy from an installed package', build=ce.build,
                       second_stage=True))
'''


def test_an_installed_packages_entry_point_method_trains(image_folder, tmp_path):
    """A package installed with an entry point in the ``timm_paco.methods`` group: train.py finds its method with
    no flag (the package's dist-info on the path is what pip installs; the export of a method is tested above)."""
    site = tmp_path / 'site'
    (site / 'ep_methods-1.0.dist-info').mkdir(parents=True)
    (site / 'ep_methods-1.0.dist-info' / 'METADATA').write_text('Metadata-Version: 2.1\nName: ep-methods\n'
                                                               'Version: 1.0\n')
    (site / 'ep_methods-1.0.dist-info' / 'entry_points.txt').write_text('[timm_paco.methods]\nep = ep_methods\n')
    (site / 'ep_methods.py').write_text(ENTRY_POINT_MODULE)
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run(TRAIN + _train_flags(image_folder, tmp_path, '--task', 'ep-ce', '--epochs', '1',
                                               '--experiment', 'ep'), capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert torch.load(tmp_path / 'ep' / 'last.pth.tar', map_location='cpu', weights_only=False)['args'].task == 'ep-ce'
    with open(tmp_path / 'ep' / 'class_counts.json') as f:
        assert json.load(f)['class_counts'] == [4, 4, 4, 4]
