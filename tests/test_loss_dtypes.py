"""docs/design.md's numeric convention for every loss: float64 inputs are computed (and differentiated) in
float64, float32 / float16 / bfloat16 inputs in float32, inside and outside an autocast region."""
import pytest
import torch
import torch.nn.functional as F

from timm_paco.losses import PBSDLoss, PixelPaCoLoss, create_loss, list_losses

C, A, D, K = 3, 6, 5, 4
COUNTS = [30, 6, 2]


def _registry_call(name, dtype):
    kwargs = dict(num_classes=C)
    if name in ('class_balanced', 'ldam', 'balanced_softmax'):
        kwargs['class_counts'] = COUNTS
    loss = create_loss(name, **kwargs)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(A, C, generator=g).to(dtype).requires_grad_()
    feats = F.normalize(torch.randn(A, D, generator=g), dim=1).to(dtype).requires_grad_()
    labels = torch.tensor([0, 1, 2, 0, 1, 0])
    if name == 'dscl':  # the own keys, then a queue
        bank = F.normalize(torch.randn(A + K, D, generator=g), dim=1).to(dtype)
        return lambda: loss(None, feats, labels, bank, torch.cat([labels, labels[:K]])), (feats,)
    if name == 'supcon':  # a loss of the embeddings alone
        return lambda: loss(None, feats, labels), (feats,)
    if name in ('paco', 'gpaco'):
        return lambda: loss(logits, feats, labels), (logits, feats)
    return lambda: loss(logits, None, labels), (logits,)


def _pbsd_call(dtype):
    g = torch.Generator().manual_seed(1)
    unit = lambda *shape: F.normalize(torch.randn(*shape, D, generator=g), dim=-1).to(dtype)
    teacher, student, keys, queue = unit(2, A), unit(2, A).requires_grad_(), unit(A), unit(K)
    return lambda: PBSDLoss()(teacher, student, keys, queue), (student,)


def _pixel_call(dtype):
    g = torch.Generator().manual_seed(2)
    embed = torch.randn(2, D, 3, 4, generator=g).to(dtype).requires_grad_()
    logit = torch.randn(2, C, 3, 4, generator=g).to(dtype).requires_grad_()
    labels = torch.randint(0, C, (2, 3, 4), generator=g)
    return lambda: PixelPaCoLoss(C, num_pixels=None)(embed, logit, labels), (embed, logit)


CASES = [(name, lambda dtype, name=name: _registry_call(name, dtype)) for name in list_losses()]
CASES += [('pbsd', _pbsd_call), ('pixel_paco', _pixel_call)]


@pytest.mark.parametrize('name, make', CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize('dtype, expected', [
    (torch.float64, torch.float64), (torch.float32, torch.float32),
    (torch.float16, torch.float32), (torch.bfloat16, torch.float32),
])
@pytest.mark.parametrize('autocast', [False, True])
def test_losses_compute_in_float32_or_float64_if_given(name, make, dtype, expected, autocast):
    call, inputs = make(dtype)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        loss = call()
    assert loss.dtype == expected and torch.isfinite(loss), f'{name}: {loss.dtype}'
    loss.backward()
    for x in inputs:
        assert x.grad is not None and x.grad.dtype == dtype and torch.isfinite(x.grad).all(), name
