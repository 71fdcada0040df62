"""The command-line value checks: argparse's usage error names the flag and the bad value."""
import argparse
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from timm_paco.arg_types import (
    decay_rate, finite_float, non_negative_float, non_negative_int, percent, positive_float, positive_int, probability,
    repeated, require_distinct,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parser():
    parser = argparse.ArgumentParser(prog='prog')
    parser.add_argument('--epochs', type=positive_int, default=1)
    parser.add_argument('--workers', type=non_negative_int, default=0)
    parser.add_argument('--seeds', type=int, nargs='+')
    parser.add_argument('--taus', type=float, nargs='+')
    return parser


@pytest.mark.parametrize('argv, message', [
    (['--epochs', '0'], 'argument --epochs: expected an integer >= 1, got 0'),
    (['--epochs', '2.5'], "argument --epochs: expected an integer >= 1, got '2.5'"),
    (['--workers', '-1'], 'argument --workers: expected an integer >= 0, got -1'),
])
def test_integer_types_name_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_integer_types_accept_their_range():
    args = _parser().parse_args(['--epochs', '3', '--workers', '0'])
    assert (args.epochs, args.workers) == (3, 0)


@pytest.mark.parametrize('kind, good, bad, message', [
    (finite_float, ['-2.5', '0', '1e3'], ['nan', 'inf', '-inf'], 'a finite number'),
    (non_negative_float, ['0', '0.5'], ['-1e-9', 'nan', 'inf'], 'a finite number >= 0'),
    (positive_float, ['1e-9', '3'], ['0', '-1', 'inf'], 'a finite number > 0'),
    (probability, ['0', '0.5', '1'], ['-0.1', '1.01', 'nan'], 'a number in [0, 1]'),
    (decay_rate, ['0', '0.999'], ['1', '-0.1', 'nan'], 'a number in [0, 1)'),
    (percent, ['0', '37.5', '100'], ['100.5', '-1', 'nan'], 'a percentage in [0, 100]'),
])
def test_float_types_accept_their_range_and_name_the_flag(kind, good, bad, message, capsys):
    parser = argparse.ArgumentParser(prog='prog')
    parser.add_argument('--x', type=kind)
    assert [parser.parse_args([f'--x={v}']).x for v in good] == [float(v) for v in good]
    for value in bad + ['ten']:
        with pytest.raises(SystemExit):
            parser.parse_args([f'--x={value}'])
        shown = repr(value) if value == 'ten' else value
        assert f'argument --x: expected {message}, got {shown}' in capsys.readouterr().err


def test_require_distinct(capsys):
    parser = _parser()
    args = parser.parse_args(['--seeds', '0', '1', '2', '--taus', '0.5', '1', '1.0', '0.5'])
    require_distinct(parser, ('--seeds', args.seeds), ('--taus', None))  # distinct values and None pass
    with pytest.raises(SystemExit):
        require_distinct(parser, ('--seeds', args.seeds), ('--taus', args.taus))
    assert '--taus: 1, 0.5 given more than once' in capsys.readouterr().err
    assert repeated([3, 1, 3, 2, 1, 3]) == [3, 1]


def _script(name, *argv):
    return subprocess.run([sys.executable, os.path.join(REPO, 'benchmarks', name), *argv], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(REPO, 'benchmarks', name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_loss_one_configuration_from_any_size_flag(capsys):
    """--queue / --classes / --dim alone give one configuration (the others at their single defaults); run in this
    process as its __main__ runs it (its --threads restored afterwards)."""
    import torch
    from _cli import run_script_here
    path, threads = os.path.join(REPO, 'benchmarks', 'bench_loss.py'), torch.get_num_threads()
    try:
        code, out, err = run_script_here(capsys, path, ['--anchors', '8', '--queue', '16', '--dim', '4', '--warmup',
                                                        '0', '--repeats', '1', '--threads', '1'])
        assert code == 0, err
        rows = [line for line in out.splitlines() if line.startswith('| paco A=')]
        assert len(rows) == 1 and rows[0].startswith('| paco A=8 N=16 C=1000 D=4 |')
        code, out, err = run_script_here(capsys, path, ['--loss', 'dscl', '--anchors', '8', '--queue', '16', '--dim',
                                                        '4', '--warmup', '0', '--repeats', '1', '--threads', '1'])
        assert code == 0, err  # fails unless fast and dense agree to 1e-4
        assert [line for line in out.splitlines() if line.startswith('| dscl A=8 N=16 C=1000 D=4 |')]
    finally:
        torch.set_num_threads(threads)
    code, _, err = run_script_here(capsys, path, ['--repeats', '0'])
    assert code == 2 and 'argument --repeats: expected an integer >= 1, got 0' in err


def test_bench_step_without_warmup(tmp_path):
    out = tmp_path / 'step.json'
    proc = _script('bench_step.py', '--model', 'resnet10t', '--num-classes', '5', '--img-size', '32', '-b', '4',
                   '--queue-size', '16', '--steps', '1', '--warmup', '0', '--rounds', '1', '--threads', '1',
                   '--device', 'cpu', '--pbsd', '--pbsd-patch-size', '16', '--view-forward', '--json', str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert {'ce', 'gpaco', 'paco', 'dscl', 'dscl+pbsd'} <= set(result['step_s']) and result['pbsd_overhead'] > 0
    assert result['pbsd_patch_size'] == 16
    assert set(result['joint_over_per_view']) == {'ce:joint', 'gpaco:joint', 'dscl+pbsd:joint'}
    assert all(r > 0 for r in result['joint_over_per_view'].values())
