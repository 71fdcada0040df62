"""DSCL loss against the independent float64 per-anchor reference (values and gradients)."""
import pytest
import torch
import torch.nn.functional as F

from timm_paco.losses import DSCLLoss, create_loss
from reference_losses import dscl_reference, supcon_reference


def _inputs(labels, bank_labels, dim=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor(labels)
    bank_labels = torch.tensor(list(labels) + list(bank_labels))  # own keys first, then the queue
    queries = F.normalize(torch.randn(len(labels), dim, generator=g, dtype=torch.float64), dim=1)
    bank = F.normalize(torch.randn(len(bank_labels), dim, generator=g, dtype=torch.float64), dim=1)
    return queries.to(dtype).requires_grad_(), labels, bank.to(dtype).requires_grad_(), bank_labels


CASES = {
    'duplicates in batch and queue': ([0, 1, 1, 2, 3, 3, 3], [1, 3, 0, 5, 3]),
    'no class positive for some anchors': ([0, 1, 2, 2], [7, 8]),  # anchors 0 and 1: InfoNCE on the own key
    'empty queue': ([4, 4, 5, 6], []),
    'every anchor alone in its class': ([0, 1, 2], [3, 4]),
}


@pytest.mark.parametrize('alpha', [1 / 9, 0.0, 0.5, 1.0])
@pytest.mark.parametrize('case', list(CASES), ids=list(CASES))
def test_matches_the_reference_in_value_and_gradient(case, alpha):
    queries, labels, bank, bank_labels = _inputs(*CASES[case])
    loss = DSCLLoss(alpha=alpha, temperature=0.07)(None, queries, labels, bank, bank_labels)
    grads = torch.autograd.grad(loss, (queries, bank))
    q_ref, b_ref = queries.detach().clone().requires_grad_(), bank.detach().clone().requires_grad_()
    ref = dscl_reference(q_ref, labels, b_ref, bank_labels, alpha=alpha, temperature=0.07)
    ref_grads = torch.autograd.grad(ref, (q_ref, b_ref))
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_num_classes_layout_gives_the_same_loss():
    queries, labels, bank, bank_labels = _inputs(*CASES['duplicates in batch and queue'])
    a = create_loss('dscl', alpha=0.3, temperature=0.1)(None, queries, labels, bank, bank_labels)
    for layout_classes in (6, 100):
        b = DSCLLoss(alpha=0.3, temperature=0.1, num_classes=layout_classes)(None, queries, labels, bank, bank_labels)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_alpha_one_over_positives_plus_one_is_supcon():
    # every anchor has 2 class positives (the other query and the other key of its label) besides its own key:
    # alpha = 1/3 weighs the own key like each class positive, which is SupCon over all same-label members
    queries, labels, bank, bank_labels = _inputs([0, 0, 1, 1], [])
    dscl = DSCLLoss(alpha=1 / 3, temperature=0.07)(None, queries, labels, bank, bank_labels)
    supcon = supcon_reference(queries, labels, bank, bank_labels, temperature=0.07)
    torch.testing.assert_close(dscl, supcon, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs_under_autocast(dtype):
    queries, labels, bank, bank_labels = _inputs(*CASES['duplicates in batch and queue'], dim=16, dtype=dtype)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = DSCLLoss()(None, queries, labels, bank, bank_labels)
    assert loss.dtype == torch.float32  # the contrastive logits in float32
    ref = dscl_reference(queries.detach().double(), labels, bank.detach().double(), bank_labels)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    loss.backward()
    assert queries.grad.dtype == dtype and torch.isfinite(queries.grad).all()


def test_bad_input_is_one_clear_error():
    queries, labels, bank, bank_labels = _inputs([0, 1, 1], [2])
    loss = DSCLLoss()
    with pytest.raises(ValueError, match=r'features must be L2-normalised rows \(norm 1\): got norms in \[2'):
        loss(None, queries.detach() * 2, labels, bank, bank_labels)
    with pytest.raises(ValueError, match='queue_features must be L2-normalised'):
        loss(None, queries, labels, bank.detach() * 3, bank_labels)
    with pytest.raises(ValueError, match=r'features rows must match labels'):
        loss(None, queries[:2], labels, bank, bank_labels)
    with pytest.raises(ValueError, match=r"queue_labels\[:A\] must equal labels"):
        loss(None, queries, labels, bank, bank_labels.flip(0))
    with pytest.raises(ValueError, match='must start with the anchors\' own keys'):
        loss(None, queries, labels, bank[:2], bank_labels[:2])
    with pytest.raises(ValueError, match=r'alpha must lie in \[0, 1\] \(alpha = 1 / \(1 \+ beta\)'):
        DSCLLoss(alpha=1.5)
    with pytest.raises(ValueError, match='labels must lie in'):
        DSCLLoss(num_classes=2)(None, queries, labels, bank, bank_labels)
