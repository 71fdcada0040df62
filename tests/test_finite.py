"""timm_paco.finite: non-finite tensors found and named in (nested) states and gradients."""
import pytest
import torch

from timm_paco.finite import NonFiniteError, check_finite_state, grads_finite, non_finite_names


def test_non_finite_names_walk_nested_states():
    state = {'a': torch.ones(3), 'b': {'c': torch.tensor([1., float('nan')]), 'd': torch.tensor([1, 2])},
             'e': torch.tensor([float('-inf')], dtype=torch.float64), 'f': 3, 'g': torch.zeros(0)}
    assert non_finite_names(state) == ['b.c', 'e']
    with pytest.raises(NonFiniteError, match=r'^the model has non-finite weights \(NaN or inf\) in b\.c, e: '):
        check_finite_state(state, 'the model')
    check_finite_state({'a': torch.ones(2), 'n': torch.tensor([7])}, 'x')  # integer tensors are not checked
    many = {f'w{i}': torch.tensor([float('nan')]) for i in range(5)}
    with pytest.raises(NonFiniteError, match=r'in w0, w1, w2 and 2 more:'):
        check_finite_state(many, 'c')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize('bad', [None, float('nan'), float('inf'), float('-inf')])
def test_grads_finite(dtype, bad):
    layers = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).to(dtype)
    layers(torch.randn(5, 3, dtype=dtype)).sum().backward()
    before = [p.grad.clone() for p in layers.parameters()]
    if bad is not None:
        layers[1].weight.grad[1, 2] = bad
        before[2][1, 2] = bad
    assert grads_finite(layers.parameters()) is (bad is None)
    for p, g in zip(layers.parameters(), before):  # the check leaves the gradients as they were
        assert torch.equal(p.grad, g) or (torch.isnan(p.grad) == torch.isnan(g)).all()
    layers.zero_grad(set_to_none=True)
    assert grads_finite(layers.parameters())  # no gradients: nothing to stop for
