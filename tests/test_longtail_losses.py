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
    with pytest.raises(ValueError, match='^gamma must be >= 0'):
        FocalLoss(6, gamma=-1)
    with pytest.raises(ValueError, match=r'^beta must lie in \[0, 1\)'):
        ClassBalancedLoss(6, COUNTS, beta=1.0)
    with pytest.raises(ValueError, match='class_counts is required'):
        ClassBalancedLoss(6, None)
    with pytest.raises(ValueError, match=r'class_counts must have shape \[num_classes\] = \[6\]'):
        ClassBalancedLoss(6, [1, 2])


LDAM_COUNTS = [500, 120, 30, 7, 1, 2]


@pytest.mark.parametrize('drw', [False, True])
def test_ldam_matches_the_formula(drw):
    from reference_losses import ldam_reference
    g = torch.Generator().manual_seed(1)
    cosines = (2 * torch.rand(12, 6, generator=g) - 1).requires_grad_()
    _, labels = _inputs()
    crit = create_loss('ldam', num_classes=6, class_counts=LDAM_COUNTS, beta=0.999)
    crit.set_reweighting(drw)
    loss = crit(cosines, None, labels)
    weights = effective_number_weights(torch.tensor(LDAM_COUNTS, dtype=torch.float64), 0.999).tolist()
    ref_in = cosines.detach().double().requires_grad_()
    ref = ldam_reference(ref_in, labels, LDAM_COUNTS, weights=weights if drw else None)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(cosines.grad.double(), ref_in.grad, rtol=1e-4, atol=1e-6)
    assert float(crit.margins.max()) == pytest.approx(0.5) and int(crit.margins.argmax()) == 4  # the rarest class


def test_ldam_drw_task_trains_cosine_logits_and_keeps_a_plain_model():
    import timm
    from timm_paco.methods import create_task
    torch.manual_seed(0)
    model = timm.create_model('resnet18', num_classes=6)
    task = create_task('ldam-drw', model, class_counts=LDAM_COUNTS, drw_epoch=2, verbose=False)
    x, target = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 4, 5])
    optimizer = torch.optim.SGD([p for p in task.get_trainable_module().parameters() if p.requires_grad], lr=0.1)
    for epoch in range(3):
        task.set_epoch(epoch)
        assert task.criterion.reweighting == (epoch >= 2)  # DRW from --drw-epoch on
        task.get_trainable_module().train()
        loss = task(x, target)['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        task.update_ema()
    fc = model.get_classifier()
    assert not fc.weight.requires_grad and float(fc.bias.abs().max()) == 0.0
    torch.testing.assert_close(fc.weight.norm(dim=1), torch.ones(6))
    module = task.get_trainable_module().eval()
    model.eval()
    with torch.no_grad():
        cosines, plain = module(x), model(x)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
    torch.testing.assert_close(plain, pre.norm(dim=1, keepdim=True) * cosines, rtol=1e-4, atol=1e-5)
    assert torch.equal(plain.argmax(1), cosines.argmax(1))
    state = task.get_checkpoint_state()
    assert torch.equal(state['task_state']['ldam']['weight'], module.weight.detach())
