"""The benchmark's derived rows end to end (--tiny): CE, then CE + cRT on that very CE checkpoint (train.py
--classifier-retrain crt, then validate.py), and CE + tau-norm with tau chosen on the validation split."""
import json
import os

import pytest
import torch
import yaml

from _cli import run_script_here

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARK = os.path.join(REPO, 'benchmarks', 'lt_fashion_mnist.py')


def _benchmark_here(tmp_path, capsys, *flags):
    """The benchmark's main in this process: (exit code, stdout, stderr)."""
    return run_script_here(capsys, BENCHMARK, ['--tiny', '--seeds', '0', '--output', tmp_path / 'out',
                                               '--docs', tmp_path / 'docs', *flags])


def _row(table: str, name: str):
    row = next(line for line in table.splitlines() if line.startswith(f'| {name} |'))
    return [c.strip() for c in row.strip('|').split('|')]


def test_ce_crt_and_tau_norm_build_on_the_ce_run(tmp_path, capsys):
    code, stdout, err = _benchmark_here(tmp_path, capsys, '--tasks', 'ce-crt', 'ce-tau-norm')  # CE is added too
    assert code == 0, stdout[-3000:] + err[-3000:]
    out = tmp_path / 'out'
    ce, crt, tau_dir = out / 'ce-seed0', out / 'ce-crt-seed0', out / 'ce-tau-norm-seed0'
    assert 'run 1/3: ce-seed0 train' in stdout and not (out / 'ce-crt-seed0-stage1').exists()

    # cRT: train.py's second stage on CE's own last checkpoint; only the classifier differs from it
    args = yaml.safe_load((crt / 'args.yaml').read_text())
    assert (args['task'], args['classifier_retrain'], args['sampler']) == ('ce', 'crt', 'class-balanced')
    assert args['initial_checkpoint'] == str(ce / 'last.pth.tar')
    a = torch.load(ce / 'last.pth.tar', map_location='cpu', weights_only=False)['state_dict']
    b = torch.load(crt / 'last.pth.tar', map_location='cpu', weights_only=False)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) != k.startswith('fc.') for k in a)

    # tau-norm: the tau with the best validation accuracy of the sweep (ties: the smallest) scores the test set
    sweep = json.loads((tau_dir / 'tau_norm.json').read_text())
    best = max(sweep['val_top1'])
    assert sweep['tau'] == min(t for t, acc in zip(sweep['taus'], sweep['val_top1']) if acc == best)
    assert sweep['checkpoint'] == str(ce / 'last.pth.tar') and not (tau_dir / 'last.pth.tar').exists()
    val = json.loads((tau_dir / 'val_results.json').read_text())
    assert val['top1'] == pytest.approx(best, abs=1e-6)  # validate.py --tau-norm equals the sweep at that tau

    table = (tmp_path / 'docs' / 'lt_fashion_mnist.md').read_text()
    for name, run in (('CE', ce), ('CE + cRT', crt), ('CE + τ-norm', tau_dir)):
        results = json.loads((run / 'results.json').read_text())
        assert _row(table, name)[3:] == [f'{results[k]:.2f} ± 0.00' for k in (
            'top1', 'many_acc', 'medium_acc', 'few_acc', 'ece')]
    assert f'τ = {sweep["tau"]:g} for the seeds in order' in table
    summary = json.loads((out / 'summary.json').read_text())['summary']
    assert summary['ce-tau-norm']['tau_norm'] == [sweep['tau']]

    # --resume reuses all three; a derived run whose first stage changed since is refused, naming it (both in
    # this process: the script's main through run_main, as its __main__ runs it)
    code, out_text, err = _benchmark_here(tmp_path, capsys, '--tasks', 'ce-crt', 'ce-tau-norm', '--resume')
    assert code == 0 and out_text.count(' reused') == 3, err[-2000:]
    state = torch.load(ce / 'last.pth.tar', map_location='cpu', weights_only=False)
    state['epoch'] += 1
    torch.save(state, ce / 'last.pth.tar')
    code, _, err = _benchmark_here(tmp_path, capsys, '--tasks', 'ce-crt', '--resume')
    assert code == 1 and 'Traceback' not in err  # one line, as the scripts' errors
    assert err.strip().splitlines()[-1].startswith('lt_fashion_mnist.py: error: --resume: ')
    assert f'--resume: {crt} was built on another checkpoint than {ce / "last.pth.tar"}' in err
