"""Post-hoc logit adjustment helpers and logit files (timm_paco.eval.logit_adjust)."""
import math

import pytest
import torch
from safetensors.torch import save_file

from timm_paco.eval import (
    class_hits, fit_class_bias, load_logits, logit_offset, save_logits, select_tau, sweep_logit_adjust,
)


def test_offset_and_sweep_match_a_per_sample_reference():
    g = torch.Generator().manual_seed(0)
    counts = [50, 20, 5, 0]
    logits = torch.randn(200, 4, generator=g, dtype=torch.float64) * 2
    targets = torch.randint(0, 4, (200,), generator=g)
    # zero-count classes get log(1e-9), as in the losses
    prior = [math.log(n / 75 + 1e-9) for n in counts]
    torch.testing.assert_close(logit_offset(counts, 0.5), torch.tensor([-0.5 * p for p in prior]),
                               rtol=1e-6, atol=1e-6)
    taus = [-1.0, 0.0, 0.5, 1.0]
    expected = []
    for tau in taus:
        hits = sum(int(max(range(4), key=lambda c: logits[i, c] - tau * prior[c]) == targets[i]) for i in range(200))
        expected.append(100 * hits / 200)
    assert sweep_logit_adjust(logits, targets, counts, taus) == pytest.approx(expected)
    assert len(set(expected)) > 1, 'the taus must change the predictions for this test to bite'
    correct, total = class_hits(logits, targets)
    assert total.tolist() == [int((targets == c).sum()) for c in range(4)]
    assert correct.tolist() == [int(((logits.argmax(1) == targets) & (targets == c)).sum()) for c in range(4)]


def test_select_tau_prefers_no_adjustment_on_ties():
    assert select_tau([-0.5, 0.0, 0.5], [60.0, 70.0, 65.0]) == 0.0
    assert select_tau([-0.5, 0.25, 0.5], [70.0, 70.0, 70.0]) == 0.25
    assert select_tau([-0.5, 0.5], [70.0, 70.0]) == -0.5
    with pytest.raises(ValueError, match='one accuracy per tau'):
        select_tau([0.0, 1.0], [50.0])


def _mean_ce(logits, targets, bias):  # float64 reference: mean over images of -log softmax(logits + bias)[target]
    total = 0.0
    for row, t in zip(logits.tolist(), targets.tolist()):
        scores = [v + float(b) for v, b in zip(row, bias)]
        top = max(scores)
        total += top + math.log(sum(math.exp(v - top) for v in scores)) - scores[t]
    return total / len(targets)


def test_fit_class_bias_is_the_cross_entropy_optimum():
    g = torch.Generator().manual_seed(1)
    targets = torch.arange(4).repeat(60)
    logits = torch.randn(240, 4, generator=g, dtype=torch.float64) + torch.tensor([2.0, 0.5, -1.0, -2.5])
    bias = fit_class_bias(logits, targets)
    assert bias.dtype == torch.float32 and bias.shape == (4,) and abs(bias.sum().item()) < 1e-5
    # zero gradient: the mean softmax of logits + bias equals the class frequencies of the targets
    probs = (logits + bias.double()).softmax(dim=1).mean(0)
    torch.testing.assert_close(probs, torch.full((4,), 0.25, dtype=torch.float64), rtol=0, atol=1e-6)
    best = _mean_ce(logits, targets, bias)
    assert best < _mean_ce(logits, targets, [0.0] * 4) - 0.1  # the shifted classes needed the bias
    for _ in range(5):
        assert best <= _mean_ce(logits, targets, (bias + 0.05 * torch.randn(4, generator=g)).tolist()) + 1e-9
    # a constant added to every logit changes nothing
    torch.testing.assert_close(fit_class_bias(logits + 3.0, targets), bias, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r'needs images of every class in \[0, 4\); none of class\(es\) \[3\]'):
        fit_class_bias(logits[targets < 3], targets[targets < 3])
    with pytest.raises(ValueError, match=r'logits must be \[N, C\]'):
        fit_class_bias(logits[:, 0], targets)


def test_logits_file_round_trip_and_bad_files(tmp_path):
    path = str(tmp_path / 'logits.safetensors')
    logits, targets = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0], dtype=torch.int32)
    save_logits(path, logits, targets)
    got_logits, got_targets = load_logits(path)
    assert got_logits.dtype == torch.float32 and got_targets.dtype == torch.int64
    assert torch.equal(got_logits, logits.float()) and torch.equal(got_targets, targets.long())

    with pytest.raises(ValueError, match=r'logits must be \[N, C\] and targets \[N\]'):
        save_logits(path, logits, targets[:5])
    with pytest.raises(FileNotFoundError, match='missing.safetensors not found'):
        load_logits(str(tmp_path / 'missing.safetensors'))
    junk = tmp_path / 'junk.safetensors'
    junk.write_bytes(b'not a safetensors file at all')
    with pytest.raises(ValueError, match='junk.safetensors is not a safetensors file'):
        load_logits(str(junk))
    wrong = str(tmp_path / 'wrong.safetensors')
    save_file({'scores': torch.zeros(2, 3)}, wrong)
    with pytest.raises(ValueError, match=r'wrong.safetensors must hold "logits" \[N, C\] and "targets" \[N\], '
                                         r'got scores \[2, 3\]'):
        load_logits(wrong)
    save_file({'logits': torch.zeros(2, 3), 'targets': torch.tensor([0, 3])}, wrong)
    with pytest.raises(ValueError, match=r'targets must lie in \[0, 3\)'):
        load_logits(wrong)
