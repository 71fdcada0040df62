"""Focal and class-balanced losses against independent float64 formulas (values and gradients), under autocast
and on bad input."""
import pytest
import torch

from timm_paco.losses import ClassBalancedLoss, FocalLoss, create_loss, effective_number_weights

from reference_losses import class_balanced_reference, focal_reference

COUNTS = [500, 120, 30, 7, 0, 2]


def _inputs(rows=12, classes=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(rows, classes, generator=g)).requires_grad_()
    labels = torch.tensor([0, 1, 2, 3, 5, 0, 0, 1, 2, 5, 3, 0][:rows])
    return logits, labels


@pytest.mark.parametrize('gamma', [0.0, 0.5, 1.0, 2.0])
def test_focal_matches_the_formula(gamma):
    logits, labels = _inputs()
    loss = FocalLoss(6, gamma=gamma)(logits, None, labels)
    ref_logits = logits.detach().double().requires_grad_()
    ref = focal_reference(ref_logits, labels, gamma=gamma)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-7)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(logits.grad.double(), ref_logits.grad, rtol=1e-5, atol=1e-7)
    if gamma == 0.0:  # γ = 0 is cross-entropy
        torch.testing.assert_close(loss, create_loss('ce', num_classes=6)(logits, None, labels))


@pytest.mark.parametrize('beta', [0.0, 0.9, 0.9999])
def test_class_balanced_matches_the_formula(beta):
    logits, labels = _inputs()
    loss = create_loss('class_balanced', num_classes=6, class_counts=COUNTS, beta=beta)(logits, None, labels)
    ref_logits = logits.detach().double().requires_grad_()
    ref = class_balanced_reference(ref_logits, labels, COUNTS, beta=beta)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-7)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(logits.grad.double(), ref_logits.grad, rtol=1e-5, atol=1e-7)


def test_effective_number_weights():
    w = effective_number_weights(torch.tensor([100., 10., 0., 1.]), 0.9)
    raw = torch.tensor([0.1 / (1 - 0.9 ** 100), 0.1 / (1 - 0.9 ** 10), 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(w, raw * 3 / raw.sum())
    assert w[3] > w[1] > w[0] and w[2] == 0  # rarer classes weigh more; an empty class nothing


@pytest.mark.parametrize('loss', ['focal', 'class_balanced'])
def test_float32_under_autocast(loss):
    logits, labels = _inputs()
    kwargs = dict(class_counts=COUNTS) if loss == 'class_balanced' else {}
    crit = create_loss(loss, num_classes=6, **kwargs)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = crit(logits.bfloat16(), None, labels)
    assert value.dtype == torch.float32 and bool(torch.isfinite(value))


def test_bad_input():
    with pytest.raises(ValueError, match='--focal-gamma must be >= 0'):
        FocalLoss(6, gamma=-1)
    with pytest.raises(ValueError, match=r'--cb-beta must lie in \[0, 1\)'):
        ClassBalancedLoss(6, COUNTS, beta=1.0)
    with pytest.raises(ValueError, match='class_counts is required'):
        ClassBalancedLoss(6, None)
    with pytest.raises(ValueError, match=r'class_counts must have shape \[num_classes\] = \[6\]'):
        ClassBalancedLoss(6, [1, 2])
