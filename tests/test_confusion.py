"""Confusion counts, rates and the most-confused class pairs (timm_paco.eval.confusion)."""
import math

import pytest
import torch

from timm_paco.data.metrics import LongTailMeter
from timm_paco.eval import confusion_counts, confusion_rates, top_confusions


def test_counts_match_a_per_sample_reference_with_and_without_offset():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 5, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 5, (300,), generator=g)
    offset = torch.tensor([0.0, 0.0, 1.5, -1.0, 0.3])
    for shift in (None, offset):
        expected = [[0] * 5 for _ in range(5)]
        for row, t in zip(logits.tolist(), targets.tolist()):
            scores = row if shift is None else [v + float(s) for v, s in zip(row, shift)]
            expected[t][max(range(5), key=scores.__getitem__)] += 1
        counts = confusion_counts(logits, targets, shift)
        assert counts.dtype == torch.int64 and counts.tolist() == expected
    assert confusion_counts(logits, targets).tolist() != confusion_counts(logits, targets, offset).tolist()
    assert confusion_counts(logits, targets).sum(1).tolist() == torch.bincount(targets, minlength=5).tolist()


def test_ties_are_broken_as_the_accuracy_meter_breaks_them():
    # bf16-rounded logits tie often; the confusion counts and validate.py's meter must name the same top-1 class
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 10, generator=g).mul(0.05).bfloat16().float()
    logits[:50, 3] = logits[:50, 7] = logits[:50].max(dim=1).values + 1  # exact ties at the top
    targets = torch.randint(0, 10, (4000,), generator=g)
    assert (logits == logits.max(dim=1, keepdim=True).values).sum(dim=1).gt(1).sum() >= 50
    meter = LongTailMeter(10, topk=(1, 5))
    meter.update(logits, targets)
    counts = confusion_counts(logits, targets)
    assert torch.equal(counts.diagonal(), meter.class_correct) and torch.equal(counts.sum(dim=0), meter.class_predicted)
    acc = meter.topk_accuracy()
    assert acc[1] == pytest.approx(100 * int(counts.diagonal().sum()) / 4000) and acc[5] >= acc[1]


def test_rates_are_row_shares_in_percent():
    counts = torch.tensor([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    rates = confusion_rates(counts)
    assert rates[0].tolist() == [75.0, 25.0, 0.0] and rates[2].tolist() == [25.0, 25.0, 50.0]
    assert all(math.isnan(v) for v in rates[1].tolist())  # a class without test images


def test_top_confusions_take_the_worst_rate_of_any_matrix_off_the_diagonal():
    a = torch.tensor([[90.0, 10.0, 0.0], [5.0, 95.0, 0.0], [30.0, 0.0, 70.0]])
    b = torch.tensor([[50.0, 0.0, 50.0], [0.0, 80.0, 20.0], [10.0, 10.0, 80.0]])
    assert top_confusions([a, b], 3) == [(0, 2), (2, 0), (1, 2)]
    # ties: the lower true class first, then the lower prediction; a NaN row (no test images) ranks last
    c = torch.tensor([[0.0, 20.0, 20.0], [20.0, 0.0, 0.0], [math.nan] * 3])
    assert top_confusions([c], 4) == [(0, 1), (0, 2), (1, 0), (1, 2)]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r'logits must be \[N, C\] and targets \[N\]'):
        confusion_counts(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r'targets must lie in \[0, 3\), got range \[0, 3\]'):
        confusion_counts(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='at least one'):
        top_confusions([], 2)
