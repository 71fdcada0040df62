"""Quick start and long-tail benchmark: IDX pool on the real Fashion-MNIST, and both scripts end to end (--tiny)."""
import csv
import json
import os
import subprocess

import numpy as np
import pytest
import safetensors.numpy
import yaml
from torchvision.datasets import FashionMNIST

from timm_paco.data.imbalance import long_tail_counts
from timm_paco.data.fashion_mnist_pool import cap_per_class
from timm_paco.data.idx import read_idx, write_idx
from timm_paco.runs import TINY_N_MAX, TINY_N_TEST
from timm_paco.quickstart import main as quickstart_main
from timm_paco.runs import benchmark, benchmark_grid, benchmark_report
from _cli import run_script_here
from _wheel import install_wheel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_idx_round_trip(tmp_path):
    images = np.random.RandomState(0).randint(0, 256, size=(5, 3, 4), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(str(tmp_path / 'img'), images)
    write_idx(str(tmp_path / 'lbl'), labels)
    np.testing.assert_array_equal(read_idx(str(tmp_path / 'img')), images)
    np.testing.assert_array_equal(read_idx(str(tmp_path / 'lbl')), labels)
    with pytest.raises(ValueError, match='1-d label or 3-d image'):
        write_idx(str(tmp_path / 'bad'), images[0])


def test_cap_per_class_keeps_first_images_of_each_class(fmnist_root, tmp_path):
    counts = cap_per_class(fmnist_root, str(tmp_path), n_max=7, n_test=3)
    assert counts == [7] * 10
    full = FashionMNIST(fmnist_root, train=True)
    capped = FashionMNIST(str(tmp_path), train=True)
    test = FashionMNIST(str(tmp_path), train=False)
    assert len(capped) == 70 and len(test) == 30
    targets = full.targets.numpy()
    expected = np.sort(np.concatenate([np.flatnonzero(targets == c)[:7] for c in range(10)]))
    np.testing.assert_array_equal(capped.targets.numpy(), targets[expected])
    np.testing.assert_array_equal(capped.data.numpy(), full.data.numpy()[expected])
    with pytest.raises(ValueError, match='--n-max'):
        cap_per_class(fmnist_root, str(tmp_path / 'x'), n_max=0)


def test_benchmark_tiny_keeps_off_the_default_folders(capsys):
    for argv in (['--tiny'], ['--tiny', '--output', 'x'], ['--tiny', '--docs', 'y']):
        with pytest.raises(SystemExit):
            benchmark.parse_args(argv)
        assert '--tiny: pass --output and --docs' in capsys.readouterr().err
    assert benchmark.parse_args(['--tiny', '--output', 'x', '--docs', 'y']).tiny


def test_quickstart_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit):
        quickstart_main(['--tiny', '--n-max', '5'])
    assert f'--n-max 5: --tiny fixes {TINY_N_MAX} training images per class' in capsys.readouterr().err
    for flag, value, low in (('--epochs', '0', 1), ('--threads', '0', 1), ('--n-max', '-5', 1), ('--seed', '-1', 0)):
        with pytest.raises(SystemExit):  # before any data is written
            quickstart_main([flag, value, '--output', str(tmp_path / 'qs')])
        assert f'argument {flag}: expected an integer >= {low}, got {value}' in capsys.readouterr().err
    assert not (tmp_path / 'qs').exists()


def test_validation_root_holds_the_next_training_images(fmnist_root, tmp_path):
    assert cap_per_class(fmnist_root, str(tmp_path), n_max=7, n_val=4) == [7] * 10
    full = FashionMNIST(fmnist_root, train=True)
    pool = FashionMNIST(str(tmp_path), train=True)
    val = FashionMNIST(str(tmp_path), train=False)
    targets = full.targets.numpy()
    expected = np.sort(np.concatenate([np.flatnonzero(targets == c)[7:11] for c in range(10)]))
    np.testing.assert_array_equal(val.targets.numpy(), targets[expected])
    np.testing.assert_array_equal(val.data.numpy(), full.data.numpy()[expected])
    assert np.bincount(val.targets.numpy()).tolist() == [4] * 10
    pool_images = {bytes(x) for x in pool.data.numpy()}
    assert not any(bytes(x) in pool_images for x in val.data.numpy())  # none of them is trained on
    with pytest.raises(ValueError, match=r'--n-val 6000: class 0 has 6000 images, fewer than the 6007'):
        cap_per_class(fmnist_root, str(tmp_path / 'x'), n_max=7, n_val=6000)


def _run(argv, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _script_here(capsys, name, argv):
    """A benchmark script of benchmarks/ in this process (its train.py / validate.py runs stay processes)."""
    return run_script_here(capsys, os.path.join(REPO, 'benchmarks', name), argv)


def test_quickstart_and_benchmark_tiny(tmp_path, capsys):
    """The quick start from the wheel, installed into a fresh environment and run from another folder (the README's
    user); the benchmark, from the checkout, then reuses its run."""
    out, elsewhere = tmp_path / 'out', tmp_path / 'elsewhere'
    python = install_wheel(tmp_path / 'wheel')
    elsewhere.mkdir()
    where = _run([python, '-c', 'import timm_paco; print(timm_paco.__file__)'], elsewhere)
    assert where.startswith(str(tmp_path / 'wheel' / 'venv')), where  # the wheel's package, not the checkout's
    # quick start: data, python -m timm_paco.train / validate as a user runs them
    stdout = _run([python, '-m', 'timm_paco.quickstart', '--tiny', '--threads', '1', '--output', str(out)],
                  elsewhere)
    run0 = out / 'paco-seed0'
    results = json.loads((run0 / 'results.json').read_text())
    for key in ('top1', 'many_acc', 'medium_acc', 'few_acc'):
        assert 0. <= results[key] <= 100.
    assert f"overall {results['top1']:.2f}" in stdout
    assert all(f"stage {i}/3" in stdout for i in (1, 2, 3))
    assert f'{python} -m timm_paco.train' in stdout and f'{python} -m timm_paco.validate' in stdout
    assert (results['many_classes'], results['medium_classes'], results['few_classes']) == (2, 3, 5)
    with open(run0 / 'results_per_class.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [int(r['train_count']) for r in rows] == long_tail_counts(TINY_N_MAX, 10, 0.01)
    assert [int(r['val_count']) for r in rows] == [TINY_N_TEST] * 10
    assert (run0 / 'results_per_class.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert (run0 / 'results_reliability.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'  # ECE's diagram
    assert 0.0 <= results['ece'] <= 100.0 and f"reliability diagram {run0 / 'results_reliability.png'}" in stdout
    assert json.loads((run0 / 'class_counts.json').read_text()) is not None

    # benchmark: aggregates the quick start's seed-0 PaCo run (--resume) into its table, figure and summary
    docs = tmp_path / 'docs'
    # it also trains PaCo at prior tau 0.5 and keeps the setting with the best validation accuracy
    code, stdout, err = _script_here(capsys, 'lt_fashion_mnist.py', [
        '--tiny', '--tasks', 'paco', '--seeds', '0', '--prior-taus', '0.5', '1', '--resume', '--output', out,
        '--docs', docs])  # in this process; its train.py / validate.py runs are processes
    assert code == 0, err[-3000:]
    assert 'paco-seed0 reused' in stdout
    names = {(0.5, 0.0): 'paco-tau0.5-seed0', (1.0, 0.0): 'paco-seed0'}
    for (tau, smoothing), name in names.items():
        args = yaml.safe_load((out / name / 'args.yaml').read_text())
        # args.yaml holds the flags as the run used them: the task's default smoothing 0 resolved for PaCo's own
        assert (args['prior_tau'], args['smoothing']) == (tau, smoothing)
    val = {setting: json.loads((out / name / 'val_results.json').read_text()) for setting, name in names.items()}
    for v in val.values():  # the validation split: TINY_N_TEST images of each class
        assert v['many_count'] + v['medium_count'] + v['few_count'] == 10 * TINY_N_TEST
    chosen = max(names, key=lambda setting: (val[setting]['top1'], setting == (1.0, 0.0)))
    chosen_dir = out / names[chosen]
    test = json.loads((chosen_dir / 'results.json').read_text())
    table = (docs / 'lt_fashion_mnist.md').read_text()
    row = next(line for line in table.splitlines() if line.startswith('| PaCo |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1:3] == [f'{chosen[0]:g}', f'{chosen[1]:g}']
    assert cells[3:] == [f'{test[k]:.2f} ± 0.00' for k in ('top1', 'many_acc', 'medium_acc', 'few_acc', 'ece')]
    tuning = table[table.index('## Settings selected'):table.index('## Findings')]
    grid = [line for line in tuning.splitlines() if line.startswith('| PaCo |')]
    assert len(grid) == 2
    assert f'| **{chosen[0]:g}** | **{chosen[1]:g}** | {val[chosen]["top1"]:.2f} ± 0.00 |' in ''.join(grid)
    assert 'python benchmarks/lt_fashion_mnist.py --tiny' in table
    assert '--prior-taus 0.5 1' in table
    assert f' --output {out} --docs {docs}`' in table  # the reproduce line names where it wrote
    assert 'for 1 train + validate runs' in table and '1 more runs were reused' in table
    assert 'computed; 1 of them has no recorded run time).' in table  # the quick start's run: not timed by the script
    run_seconds = json.loads((out / names[(0.5, 0.0)] / 'run_time.json').read_text())['seconds']
    assert 0 < run_seconds < 300
    assert (docs / 'lt_fashion_mnist.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    summary = json.loads((out / 'summary.json').read_text())['summary']['paco']
    assert summary['seeds'] == [0] and (summary['prior_tau'], summary['smoothing']) == chosen
    assert summary['train_count'] == long_tail_counts(TINY_N_MAX, 10, 0.01)
    with open(chosen_dir / 'results_per_class.csv', newline='') as f:
        accuracy = [float(r['accuracy']) for r in csv.DictReader(f)]
    assert [m for m, _ in summary['class_accuracy']] == pytest.approx(accuracy)

    # --settings-from: only the chosen setting, no search; --epochs names the docs (the tiny budget's 1 epoch, so
    # --resume may reuse the run trained above)
    code, stdout, err = _script_here(capsys, 'lt_fashion_mnist.py', [
        '--tiny', '--tasks', 'paco', '--seeds', '0', '--epochs', '1', '--settings-from', out / 'summary.json',
        '--resume', '--output', out, '--docs', docs])
    assert code == 0, err[-3000:]
    assert 'run 1/1: ' + names[chosen] + ' reused' in stdout and 'run 2/' not in stdout
    carried = (docs / 'lt_fashion_mnist_e1.md').read_text()
    assert f'| PaCo | {chosen[0]:g} | {chosen[1]:g} | ' + ' | '.join(
        f'{test[k]:.2f} ± 0.00' for k in ('top1', 'many_acc', 'medium_acc', 'few_acc')) + ' |' in carried
    assert '## Settings selected' not in carried and f'--settings-from {out / "summary.json"}' in carried
    assert f'the validation split selected in `{out / "summary.json"}`' in carried
    assert (docs / 'lt_fashion_mnist_e1.png').is_file()
    assert ('1 of them has no recorded run time' if chosen == (1.0, 0.0) else
            f'1 of them took {run_seconds / 60:.1f} min when new, their run times summed') in carried
    # --resume refuses a run of another budget in the same --output (run names do not hold the epochs)
    code, _, err = _script_here(capsys, 'lt_fashion_mnist.py', [
        '--tiny', '--tasks', 'paco', '--seeds', '0', '--epochs', '2', '--settings-from', out / 'summary.json',
        '--resume', '--output', out, '--docs', docs])
    assert code != 0 and not (docs / 'lt_fashion_mnist_e2.md').exists()
    assert f'--resume: {chosen_dir / "args.yaml"} was trained with epochs=1 (this run: 2)' in err

    # post-hoc logit adjustment of the chosen run: logits kept by validate.py, tau chosen on the validation split
    posthoc = ['--output', out, '--docs', docs, '--stem', 'tiny', '--taus', '-1', '-0.5', '0', '0.5', '1']
    code, stdout, err = _script_here(capsys, 'lt_posthoc.py', posthoc)
    assert code == 0 and '2 validate.py runs' in stdout, err[-3000:]
    counts = np.array(json.loads((chosen_dir / 'class_counts.json').read_text())['class_counts'], dtype=np.float64)
    log_p = np.log(counts / counts.sum() + 1e-9)

    def hits(split, tau):  # numpy reference: correct predictions of logits - tau * log p
        tensors = safetensors.numpy.load_file(str(chosen_dir / f'{split}_logits.safetensors'))
        assert tensors['logits'].shape == (10 * TINY_N_TEST, 10)
        return (tensors['logits'] - tau * log_p).argmax(1) == tensors['targets'], tensors['targets']

    val_acc = {tau: hits('val', tau)[0].mean() for tau in (-1, -0.5, 0, 0.5, 1)}
    best = max(val_acc.values())
    tau = min((t for t, a in val_acc.items() if a == best), key=lambda t: (abs(t), t))
    assert 100 * val_acc[0] == pytest.approx(val[chosen]['top1'], abs=1e-3)
    report = json.loads((out / 'posthoc.json').read_text())
    assert report['runs']['paco'][0]['tau'] == tau and report['summary']['paco']['taus'] == [tau]
    correct, targets = hits('test', tau)
    few = [c for c in range(10) if counts[c] < 20]
    table = (docs / 'tiny_posthoc.md').read_text()
    assert (f'| PaCo | τ = {chosen[0]:g}, ls {chosen[1]:g} | {tau:g} | as trained | '
            + ' | '.join(f'{test[k]:.2f} ± 0.00' for k in ('top1', 'many_acc', 'medium_acc', 'few_acc'))) in table
    assert (f'| + post-hoc τ | {100 * correct.mean():.2f} ± 0.00 | ') in table
    assert f'{100 * correct[np.isin(targets, few)].mean():.2f} ± 0.00 |' in table.split('+ post-hoc τ')[1]
    # class biases: the validation cross-entropy optimum (zero gradient), scored on the test logits
    bias = np.array(report['runs']['paco'][0]['class_bias'], dtype=np.float64)
    val_tensors = safetensors.numpy.load_file(str(chosen_dir / 'val_logits.safetensors'))
    z = val_tensors['logits'].astype(np.float64) + bias
    softmax = np.exp(z - z.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    gradient = softmax.mean(0) - np.bincount(val_tensors['targets'], minlength=10) / len(z)
    assert np.abs(gradient).max() < 1e-5 and abs(bias.mean()) < 1e-6
    tensors = safetensors.numpy.load_file(str(chosen_dir / 'test_logits.safetensors'))
    biased = (tensors['logits'] + bias).argmax(1) == tensors['targets']
    assert f'| + class biases | {100 * biased.mean():.2f} ± 0.00 | ' in table
    bias_rows = table.split('## Class biases')[1].split('\n')[4:14]  # one row per class, next to - log p centred
    centred = -(np.log(counts) - np.log(counts).mean())
    assert bias_rows == [f'| {FashionMNIST.classes[c]} ({int(counts[c])}) | {centred[c]:+.2f} | {bias[c]:+.2f} |'
                         for c in range(10)]
    # the most-confused pair (as trained -> at the chosen tau -> with the class biases) against numpy counts
    confusion = {}
    for state, offset in (('before', 0), ('after', -tau * log_p), ('bias', bias)):
        confusion[state] = np.zeros((10, 10), dtype=np.int64)
        np.add.at(confusion[state], (tensors['targets'], (tensors['logits'] + offset).argmax(1)), 1)
        assert report['summary']['paco']['test_confusion'][state] == confusion[state].tolist()
    rates = {k: 100 * v / v.sum(1, keepdims=True) for k, v in confusion.items()}
    off_diagonal = np.where(np.eye(10, dtype=bool), -1, rates['before'])
    true, pred = np.unravel_index(off_diagonal.argmax(), (10, 10))  # row-major: ties go to the lower pair
    names = FashionMNIST.classes
    assert table.split('## Largest confusions')[1].split('\n')[4] == (
        f'| {names[true]} ({int(counts[true])}) | {names[pred]} ({int(counts[pred])}) | '
        f'{rates["before"][true, pred]:.1f} → {rates["after"][true, pred]:.1f} → {rates["bias"][true, pred]:.1f} |')
    assert (docs / 'tiny_posthoc.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    code, stdout, err = _script_here(capsys, 'lt_posthoc.py', posthoc)
    assert code == 0 and '0 validate.py runs' in stdout, err[-3000:]  # the logits files are reused
    stale = chosen_dir / 'test_logits.safetensors'  # logits that do not reproduce results.json are refused
    targets = hits('test', 0)[1]
    wrong = np.eye(10, dtype=np.float32)[(targets + 1) % 10]  # every prediction wrong: 0 % against results.json
    assert test['top1'] > 0
    safetensors.numpy.save_file({'logits': wrong, 'targets': targets}, str(stale))
    code, _, err = _script_here(capsys, 'lt_posthoc.py', posthoc)
    assert code != 0 and 'test_logits.safetensors scores' in err
    assert 'delete the logits file and rerun' in err


def test_benchmark_grid_of_prior_taus_and_smoothings():
    """--prior-taus apply to the methods with a class prior, --smoothings to those whose loss takes smoothing; each
    setting's run is named by what differs from train.py's defaults (the end-to-end test trains two of them)."""
    args = benchmark.parse_args(['--tiny', '--tasks', 'ce', 'paco', 'focal', '--prior-taus', '0.5', '1',
                                  '--smoothings', '0', '0.1', '--output', 'o', '--docs', 'd'])
    assert benchmark._configs(args) == [
        ('ce', (1.0, 0.0)), ('ce', (1.0, 0.1)), ('paco', (0.5, 0.0)), ('paco', (0.5, 0.1)), ('paco', (1.0, 0.0)),
        ('paco', (1.0, 0.1)), ('focal', (1.0, 0.0))]
    assert [benchmark_grid.experiment_name('paco', s, 0) for s in ((0.5, 0.1), (1.0, 0.1), (1.0, 0.0))] == [
        'paco-tau0.5-ls0.1-seed0', 'paco-ls0.1-seed0', 'paco-seed0']
    assert benchmark_grid.experiment_name('ce', (1.0, 0.0), 2) == 'ce-ls0-seed2'


def test_benchmark_settings_from(tmp_path, capsys):
    """--settings-from reads each method's selected (tau, smoothing) from a summary.json; CE's tau is 1."""
    path = tmp_path / 'summary.json'
    path.write_text(json.dumps({'summary': {'ce': {'prior_tau': None, 'smoothing': 0.1},
                                            'gpaco': {'prior_tau': 0.75, 'smoothing': 0.0}}}))
    assert benchmark_grid.read_selected_settings(str(path), ['gpaco', 'ce']) == {'gpaco': (0.75, 0.0), 'ce': (1.0, 0.1)}
    with pytest.raises(ValueError, match=r"json: no selected setting for task 'paco' \(it has \['ce', 'gpaco'\]\)"):
        benchmark_grid.read_selected_settings(str(path), ['paco'])
    (tmp_path / 'other.json').write_text('{"top1": 50.0}')
    with pytest.raises(ValueError, match='other.json: no "summary" mapping'):
        benchmark_grid.read_selected_settings(str(tmp_path / 'other.json'), ['ce'])
    with pytest.raises(ValueError, match='--settings-from .*missing.json: cannot read it as JSON'):
        benchmark_grid.read_selected_settings(str(tmp_path / 'missing.json'), ['ce'])
    with pytest.raises(ValueError, match='--output .*missing.json: cannot read it as JSON'):
        benchmark_grid.read_selected_settings(str(tmp_path / 'missing.json'), ['ce'], '--output')
    with pytest.raises(ValueError, match='drop --prior-taus / --smoothings'):  # before any data or run is made
        benchmark.main(['--settings-from', str(path), '--smoothings', '0', '--output', str(tmp_path / 'out')])
    assert not (tmp_path / 'out').exists()
    for flags, message in ((['--jobs', '0'], 'argument --jobs: expected an integer >= 1, got 0'),
                           (['--epochs', '0'], 'argument --epochs: expected an integer >= 1, got 0'),
                           (['--threads', '0'], 'argument --threads: expected an integer >= 1, got 0'),
                           (['--n-max', '-5'], 'argument --n-max: expected an integer >= 1, got -5'),
                           (['--n-test', 'all'], "argument --n-test: expected an integer >= 0, got 'all'"),
                           (['--seeds', '0', '1', '0'], '--seeds: 0 given more than once'),
                           (['--prior-taus', '1', '0.5', '1.0'], '--prior-taus: 1 given more than once')):
        with pytest.raises(SystemExit):
            benchmark.main(flags + ['--output', str(tmp_path / 'out')])
        assert message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_benchmark_recipe_mismatches():
    """A reused run's args.yaml against the recipe (the method's own quick-start flags too): flags not given there
    mean train.py's defaults."""
    from timm_paco.runs import RECIPE
    trained = dict(task='paco', seed=1, epochs=20, batch_size=32, lr=0.03, weight_decay=5e-4, warmup_epochs=1,
                   img_size=16, scale=[0.35, 1.0], paco_views='randcls_sim', paco_queue_size=256, paco_momentum=0.9,
                   paco_alpha=0.01, paco_temperature=0.05, prior_tau=None, smoothing=None)
    assert benchmark_grid.recipe_mismatches(dict(trained, paco_alpha=0.05), 'paco', (1.0, 0.0), 1, RECIPE) == [
        'paco_alpha=0.05 (this run: 0.01)']
    assert benchmark_grid.recipe_mismatches(trained, 'paco', (1.0, 0.0), 1, RECIPE) == []
    assert benchmark_grid.recipe_mismatches(trained, 'paco', (1.0, 0.0), 1, dict(RECIPE, epochs=40)) == [
        'epochs=20 (this run: 40)']
    assert benchmark_grid.recipe_mismatches(dict(trained, prior_tau=0.5, paco_queue_size=64), 'paco', (1.0, 0.1), 1,
                                       RECIPE) == ['smoothing=0.0 (this run: 0.1)', 'prior_tau=0.5 (this run: 1.0)',
                                                   'paco_queue_size=64 (this run: 256)']
    # --train-flags count as train.py reads them: after the recipe, before the setting's own flags
    queue1 = dict(trained, paco_queue_size=1, batch_size=64, paco_temperature=0.07)
    assert benchmark_grid.recipe_mismatches(queue1, 'paco', (1.0, 0.0), 1, RECIPE) == [
        'batch_size=64 (this run: 32)', 'paco_temperature=0.07 (this run: 0.05)', 'paco_queue_size=1 (this run: 256)']
    flags = ['--paco-queue-size', '1', '--paco-temperature', '0.07', '-b', '64']
    assert benchmark_grid.recipe_mismatches(queue1, 'paco', (1.0, 0.0), 1, RECIPE, flags) == []
    assert benchmark_grid.recipe_mismatches(queue1, 'paco', (1.0, 0.0), 1, RECIPE,
                                            flags + ['--paco-queue-size', '8']) == ['paco_queue_size=1 (this run: 8)']
    assert benchmark_grid.recipe_mismatches(dict(trained, prior_tau=0.5, smoothing=0.1), 'paco', (0.5, 0.0), 1, RECIPE,
                                       ['--prior-tau', '2', '--smoothing', '0.1']) == []
    # CE: no prior compared, its own smoothing 0.1 when the flag was not given; no PaCo queue
    ce = {k: v for k, v in trained.items() if not k.startswith('paco_queue') and k != 'paco_momentum'}
    assert benchmark_grid.recipe_mismatches(dict(ce, task='ce', prior_tau=3.0), 'ce', (1.0, 0.1), 1, RECIPE) == []


def test_benchmark_statistics():
    """mean ± sample std over seeds, as in the table."""
    mean_std = benchmark_report.mean_std
    values = [53.4, 55.6, 59.6]
    mean, std = mean_std(values)
    assert mean == pytest.approx(np.mean(values))
    assert std == pytest.approx(np.std(values, ddof=1))
    assert mean_std([7.0]) == (7.0, 0.)
    select = benchmark_grid.select_setting
    assert select('paco', {(0.5, 0.): [60., 62.], (1., 0.): [61., 60.], (1.5, 0.): [59., 70.]}) == (1.5, 0.)
    # a tie goes to the method's own default: prior strength 1, its label smoothing (GPaCo's is 0.1)
    assert select('paco', {(0.5, 0.): [61., 61.], (1., 0.): [60., 62.], (1., .1): [62., 60.]}) == (1., 0.)
    assert select('gpaco', {(1., 0.): [61., 61.], (1., .1): [60., 62.], (.5, .1): [62., 60.]}) == (1., .1)
    assert select('ce', {(1., 0.): [50., 52.], (1., .1): [51., 50.]}) == (1., 0.)
    assert benchmark_grid.experiment_name('paco', (1.0, 0.0), 2) == 'paco-seed2'
    assert benchmark_grid.experiment_name('gpaco', (0.75, 0.1), 0) == 'gpaco-tau0.75-seed0'
    assert benchmark_grid.experiment_name('gpaco', (0.75, 0.0), 0) == 'gpaco-tau0.75-ls0-seed0'
    assert benchmark_grid.experiment_name('balanced-softmax', (1.0, 0.1), 1) == 'balanced-softmax-ls0.1-seed1'
    assert benchmark_grid.experiment_name('ce', (1.0, 0.0), 0) == 'ce-ls0-seed0'
    # train.py flags: exactly the fields the run name carries
    assert benchmark_grid.setting_flags('paco', (1.0, 0.0)) == []
    assert benchmark_grid.setting_flags('gpaco', (0.75, 0.0)) == ['--prior-tau', '0.75', '--smoothing', '0']
    assert benchmark_grid.setting_flags('balanced-softmax', (1.0, 0.1)) == ['--smoothing', '0.1']
    # docs and the default run folder: one per budget (run names do not hold it)
    assert benchmark_grid.budget_stem('small', None) == 'lt_fashion_mnist'
    assert benchmark_grid.budget_stem('small', 40) == 'lt_fashion_mnist_e40'
    assert benchmark_grid.budget_stem('large', 100) == 'lt_fashion_mnist_large_e100'


def test_quickstart_dscl_trains_both_stages_then_validates_the_second(tmp_path, capsys):
    """The quick start in this process as its __main__ runs it (its train / validate stages are processes)."""
    import torch
    from timm_paco.cli.errors import run_main
    out = tmp_path / 'out'
    capsys.readouterr()
    code = run_main(quickstart_main, 'python -m timm_paco.quickstart',
                    ['--tiny', '--task', 'dscl', '--threads', '1', '--output', str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert all(f'stage 2/3: train dscl (train.py), stage {i}' in stdout for i in (1, 2))
    first, second = out / 'dscl-seed0-stage1', out / 'dscl-seed0'
    one = yaml.safe_load((first / 'args.yaml').read_text())
    two = yaml.safe_load((second / 'args.yaml').read_text())
    assert (one['task'], one['model'], one['pbsd_weight'], one['pbsd_patch_size']) == ('dscl', 'dscl_resnet32', 1.5, 8)
    assert (two['task'], two['classifier_retrain'], two['sampler']) == ('ce', 'crt', 'class-balanced')
    assert two['initial_checkpoint'] == str(first / 'last.pth.tar')
    assert two['smoothing'] == 0 and two['weight_decay'] == 0
    a = torch.load(first / 'last.pth.tar', map_location='cpu', weights_only=False)['state_dict']
    b = torch.load(second / 'last.pth.tar', map_location='cpu', weights_only=False)['state_dict']
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) != k.startswith('fc.') for k in a)  # only the classifier was retrained
    results = json.loads((second / 'results.json').read_text())
    assert f"overall {results['top1']:.2f}" in stdout and not (first / 'results.json').exists()
