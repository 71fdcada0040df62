"""timm_paco.losses against the independent dense float64 references in tests/reference_losses.py."""
import pytest
import torch
import torch.nn.functional as F

from timm_paco.losses import (
    BalancedSoftmaxLoss, CELoss, GPaCoLoss, PaCoLoss, SupConLoss, create_loss, is_loss, list_losses, register_loss)
from timm_paco.losses import registry as loss_registry
from timm_paco.losses._contrast import positive_stats, sample_logsumexp
from timm_paco.profiling import peak_allocated_bytes

from reference_losses import balanced_softmax_reference, paco_dense_reference, paco_reference, supcon_reference

TOL = dict(rtol=1e-6, atol=1e-6)


def _inputs(num_anchors, num_queue, num_classes, dim, seed, labels=None, queue_labels=None, label_high=None,
            dtype=torch.float64, logit_scale=3.0):
    g = torch.Generator().manual_seed(seed)
    high = label_high or num_classes
    logits = (torch.randn(num_anchors, num_classes, generator=g, dtype=dtype) * logit_scale).requires_grad_()
    features = F.normalize(torch.randn(num_anchors, dim, generator=g, dtype=dtype), dim=1).requires_grad_()
    if labels is None:
        labels = torch.randint(0, high, (num_anchors,), generator=g)
    queue = qlabels = None
    if num_queue or queue_labels is not None:
        queue = F.normalize(torch.randn(num_queue, dim, generator=g, dtype=dtype), dim=1).requires_grad_()
        qlabels = queue_labels if queue_labels is not None else torch.randint(0, high, (num_queue,), generator=g)
    return logits, features, torch.as_tensor(labels), queue, qlabels


def _grads(loss, tensors):
    tensors = [t for t in tensors if t is not None]
    return torch.autograd.grad(loss, tensors, allow_unused=False)


def _check_paco(kwargs, logits, features, labels, queue, qlabels, tol=TOL):
    num_classes = logits.shape[1]
    crit = PaCoLoss(num_classes, **kwargs)
    parts = crit.loss_parts(logits, features, labels, queue, qlabels)
    ref = paco_reference(logits, features, labels, queue, qlabels, num_classes=num_classes, **kwargs)
    for name, ref_value in zip(('loss', 'loss_centre', 'loss_contrast'), ref):
        torch.testing.assert_close(parts[name].double(), ref_value, **tol, msg=name)
    assert torch.equal(parts['loss'], parts['loss_centre'] + parts['loss_contrast'])
    torch.testing.assert_close(crit(logits, features, labels, queue, qlabels), parts['loss'], rtol=0, atol=0)
    inputs = [logits, features, queue]
    for fast, slow in zip(_grads(parts['loss'], inputs), _grads(ref[0], inputs)):
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast.double(), slow.double(), **tol)
    return parts


def test_paco_long_tailed_variant():
    # PaCo on long tails: prior from counts (one empty class), anchors = query view,
    # the key view and the MoCo queue both go through the queue arguments
    B, K, C, D = 6, 10, 7, 5
    logits, q, labels, _, _ = _inputs(B, 0, C, D, seed=0, labels=[0, 1, 1, 3, 6, 6])
    g = torch.Generator().manual_seed(1)
    k = F.normalize(q.detach() + 0.1 * torch.randn(B, D, generator=g, dtype=q.dtype), dim=1).requires_grad_()
    queue = F.normalize(torch.randn(K, D, generator=g, dtype=q.dtype), dim=1).requires_grad_()
    queue_labels = torch.randint(0, C, (K,), generator=g)
    contrast = torch.cat([k, queue])
    contrast_labels = torch.cat([labels, queue_labels])
    counts = [50, 30, 20, 10, 5, 0, 2]
    _check_paco(dict(alpha=0.02, class_counts=counts), logits, q, labels, contrast, contrast_labels)
    # the queue also receives its gradient (through k and queue)
    parts = PaCoLoss(C, alpha=0.02, class_counts=counts).loss_parts(logits, q, labels, contrast, contrast_labels)
    parts['loss'].backward()
    assert k.grad is not None and queue.grad.abs().sum() > 0


def test_paco_full_imagenet_variant():
    _check_paco(dict(alpha=0.05), *_inputs(8, 12, 6, 4, seed=2))


def test_gpaco_variant():
    # GPaCo: both views are anchors (view-major), label smoothing, no queue
    B, C, D = 5, 6, 4
    g = torch.Generator().manual_seed(3)
    y = torch.tensor([0, 2, 2, 5, 1])
    logits = torch.randn(2 * B, C, generator=g, dtype=torch.float64).requires_grad_()
    features = F.normalize(torch.randn(2 * B, D, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    kwargs = dict(alpha=0.05, temperature=0.2, label_smoothing=0.1)
    _check_paco(kwargs, logits, features, y.repeat(2), None, None)
    gp = GPaCoLoss(C)
    assert (gp.alpha, gp.temperature, gp.label_smoothing, gp.log_prior) == (0.05, 0.2, 0.1, None)
    torch.testing.assert_close(gp(logits, features, y.repeat(2)), PaCoLoss(C, **kwargs)(logits, features, y.repeat(2)))


@pytest.mark.parametrize('kwargs', [
    dict(gamma=0.0),
    dict(alpha=0.0),
    dict(gamma=0.5, beta=0.7, base_temperature=0.07, temperature=0.1),
    dict(alpha=1.0, beta=0.0),  # anchors without positives leave the mean
    dict(label_smoothing=0.2, class_counts=[1, 2, 3, 4, 5]),
    dict(class_counts=[50, 20, 8, 3, 1], prior_tau=0.5),
    dict(class_counts=[50, 20, 8, 3, 1], prior_tau=1.5, label_smoothing=0.1),
])
def test_paco_hyper_parameters(kwargs):
    _check_paco(kwargs, *_inputs(7, 9, 5, 4, seed=4))


def test_paco_unnormalised_features():
    # norms far above 1: the similarity bound is too loose for a shift, the exact row max is used
    logits, features, labels, queue, qlabels = _inputs(6, 7, 5, 4, seed=19, dtype=torch.float32)
    big_f = (features.detach() * 12.0).requires_grad_()
    big_q = (queue.detach() * 9.0).requires_grad_()
    _check_paco(dict(temperature=0.1), logits, big_f, labels, big_q, qlabels, tol=dict(rtol=1e-4, atol=1e-4))


def test_paco_edge_cases():
    # an anchor whose label no other sample has (label 4), duplicate labels, queue labels the batch lacks
    _check_paco({}, *_inputs(6, 5, 8, 4, seed=5, labels=[4, 1, 1, 1, 2, 2],
                             queue_labels=torch.tensor([0, 7, 7, 2, 1])))
    # one anchor, no queue (no contrast sample at all), and one anchor with a queue
    parts = _check_paco({}, *_inputs(1, 0, 5, 4, seed=6))
    assert parts['loss_contrast'] == 0
    _check_paco(dict(label_smoothing=0.1), *_inputs(1, 3, 5, 4, seed=7, queue_labels=torch.tensor([0, 1, 2])))
    # an empty queue is the same as no queue
    logits, features, labels, _, _ = _inputs(4, 0, 5, 3, seed=8)
    crit = PaCoLoss(5)
    empty = crit(logits, features, labels, features.new_zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert torch.equal(empty, crit(logits, features, labels))


@pytest.mark.parametrize('num_classes,num_anchors,num_queue,dim', [(1000, 6, 10, 8), (8142, 4, 6, 8)])
def test_paco_many_classes(num_classes, num_anchors, num_queue, dim):
    g = torch.Generator().manual_seed(num_classes)
    counts = torch.randint(0, 500, (num_classes,), generator=g)
    labels = torch.tensor([3, 3, num_classes - 1, 17, 3, 0][:num_anchors])
    queue_labels = torch.tensor([3, num_classes - 1, 5, 17, 900, 3, 2, 1, 0, 3][:num_queue])
    inputs = _inputs(num_anchors, num_queue, num_classes, dim, seed=9, labels=labels, queue_labels=queue_labels)
    _check_paco(dict(class_counts=counts, label_smoothing=0.1), *inputs)


def test_paco_float32_large_logits_and_autocast():
    logits, features, labels, queue, qlabels = _inputs(8, 16, 10, 6, seed=10, dtype=torch.float32, logit_scale=1e4)
    crit = PaCoLoss(10, label_smoothing=0.1, class_counts=list(range(10)))
    loss = crit(logits, features, labels, queue, qlabels)
    grads = _grads(loss, [logits, features, queue])
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(g).all() for g in grads)
    ref = paco_reference(logits, features, labels, queue, qlabels, num_classes=10, label_smoothing=0.1,
                         class_counts=list(range(10)))[0]
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-2)  # |loss| ~ 1e4

    # half-precision inputs under autocast: the loss runs in float32 on the upcast values
    inputs16 = [t.detach().to(torch.bfloat16) for t in (logits / 1e4 * 3, features, queue)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss16 = crit(inputs16[0], inputs16[1], labels, inputs16[2], qlabels)
    assert loss16.dtype == torch.float32
    loss32 = crit(inputs16[0].float(), inputs16[1].float(), labels, inputs16[2].float(), qlabels)
    torch.testing.assert_close(loss16, loss32, rtol=0, atol=0)


@pytest.mark.parametrize('make,uses_logits', [
    (lambda: PaCoLoss(10, label_smoothing=0.1, class_counts=list(range(1, 11))), True),
    (lambda: SupConLoss(10), False),
], ids=['paco', 'supcon'])
def test_backward_inside_autocast_gives_the_float32_gradients(make, uses_logits):
    # a training loop may call backward inside its autocast region: the hand-written backward must not
    # be autocast (it mixed bf16 and float32 operands) and must give the gradients of a float32 backward
    crit = make()
    logits, features, labels, queue, qlabels = _inputs(8, 16, 10, 6, seed=12, dtype=torch.float32)
    queue = queue.detach().to(torch.bfloat16)
    wrt = [logits, features] if uses_logits else [features]
    grads = []
    for inside in (True, False):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            loss = crit(logits.to(torch.bfloat16), features.to(torch.bfloat16), labels, queue, qlabels)
            if inside:
                grads.append(_grads(loss, wrt))
        if not inside:
            grads.append(_grads(loss, wrt))
    for g_inside, g_outside in zip(*grads):
        assert g_inside.dtype == torch.float32
        torch.testing.assert_close(g_inside, g_outside, rtol=0, atol=0)


def test_paco_matches_dense_reference_at_larger_size():
    # float32 at a size where the per-anchor loop would be slow: the vectorised dense float64 reference
    A, N, C, D = 300, 7000, 10, 16
    logits, features, labels, queue, qlabels = _inputs(A, N, C, D, seed=17, dtype=torch.float32)
    queue = queue.detach()
    kwargs = dict(alpha=0.1, gamma=0.7, label_smoothing=0.1, class_counts=list(range(1, C + 1)))
    loss = PaCoLoss(C, **kwargs)(logits, features, labels, queue, qlabels)
    ref = paco_dense_reference(logits, features, labels, queue, qlabels, num_classes=C, **kwargs)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    for fast, slow in zip(_grads(loss, [logits, features]), _grads(ref, [logits, features])):
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-7)


def test_paco_backward_runs_once_per_graph():
    logits, features, labels, queue, qlabels = _inputs(4, 3, 5, 3, seed=18)
    loss = PaCoLoss(5)(logits, features, labels, queue, qlabels)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        loss.backward()


def test_sample_logsumexp_gradcheck():
    g = torch.Generator().manual_seed(11)
    features = F.normalize(torch.randn(5, 3, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    queue = F.normalize(torch.randn(4, 3, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda f, q: sample_logsumexp(f, q, 0.3), (features, queue))
    assert torch.autograd.gradcheck(lambda f: sample_logsumexp(f, None, 0.3), (features,))


@pytest.mark.parametrize('with_queue', [False, True])
def test_positive_stats_both_layouts_match_a_mask(with_queue):
    # the CPU layout (labels present among the anchors) and the synchronisation-free one used on GPUs
    # (every class) against an explicit same-label mask; the queue holds labels no anchor has
    g = torch.Generator().manual_seed(21)
    features = torch.randn(12, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (12,), generator=g)
    queue = torch.randn(30, 5, generator=g, dtype=torch.float64) if with_queue else None
    queue_labels = torch.randint(0, 9, (30,), generator=g) if with_queue else None
    contrast = features if queue is None else torch.cat([features, queue])
    contrast_labels = labels if queue is None else torch.cat([labels, queue_labels])
    mask = (labels[:, None] == contrast_labels[None, :]).double()
    mask[:, :12].fill_diagonal_(0.0)
    want_count, want_dot = mask.sum(dim=1), (mask * (features @ contrast.t())).sum(dim=1)
    for layout in ('present', 'classes'):
        count, dot = positive_stats(features, labels, queue, queue_labels, 9, layout=layout)
        assert count.dtype == torch.float64
        torch.testing.assert_close(count, want_count, rtol=0, atol=0)
        torch.testing.assert_close(dot, want_dot, rtol=1e-12, atol=1e-12)


def test_paco_memory_has_no_dense_masks():
    # forward + backward must stay far below one float32 [A, C + A + N] matrix per intermediate
    A, N, C, D = 64, 2048, 1000, 32
    logits, features, labels, queue, qlabels = _inputs(A, N, C, D, seed=12, dtype=torch.float32)
    queue = queue.detach()
    crit = PaCoLoss(C, class_counts=torch.ones(C))
    peak = peak_allocated_bytes(lambda: crit(logits, features, labels, queue, qlabels).backward())
    dense_matrix = A * (C + A + N) * 4
    assert peak < 2.5 * dense_matrix, (peak, dense_matrix)


@pytest.mark.parametrize('with_queue', [False, True])
def test_supcon_matches_reference(with_queue):
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3])  # label 0 and 3: no positive without the queue
    queue_labels = torch.tensor([0, 4, 1, 4]) if with_queue else None
    logits, features, labels, queue, qlabels = _inputs(7, 4 if with_queue else 0, 5, 4, seed=13, labels=labels,
                                                       queue_labels=queue_labels)
    crit = create_loss('supcon', num_classes=5, temperature=0.1, base_temperature=0.07)
    parts = crit.loss_parts(None, features, labels, queue, qlabels)
    ref = supcon_reference(features, labels, queue, qlabels, temperature=0.1, base_temperature=0.07)
    torch.testing.assert_close(parts['loss'], ref, **TOL)
    assert torch.equal(parts['loss'], parts['loss_centre'] + parts['loss_contrast'])
    inputs = [features, queue]
    for fast, slow in zip(_grads(crit(logits, features, labels, queue, qlabels), inputs), _grads(ref, inputs)):
        torch.testing.assert_close(fast, slow, **TOL)


def test_supcon_without_positives_is_zero_and_finite():
    features = F.normalize(torch.randn(1, 4, dtype=torch.float64), dim=1).requires_grad_()
    loss = SupConLoss(3)(None, features, torch.tensor([2]))
    loss.backward()
    assert loss == 0 and torch.isfinite(features.grad).all()


@pytest.mark.parametrize('tau,smoothing', [(1.0, 0.0), (0.5, 0.1)])
def test_balanced_softmax_matches_reference(tau, smoothing):
    logits, _, labels, _, _ = _inputs(9, 0, 6, 2, seed=14)
    counts = [100, 40, 10, 3, 1, 0]
    crit = create_loss('balanced_softmax', num_classes=6, class_counts=counts, tau=tau, label_smoothing=smoothing)
    loss = crit(logits, None, labels)
    ref = balanced_softmax_reference(logits, labels, counts, tau=tau, label_smoothing=smoothing)
    torch.testing.assert_close(loss, ref, **TOL)
    torch.testing.assert_close(_grads(loss, [logits])[0], _grads(ref, [logits])[0], **TOL)


def test_ce_is_unadjusted_cross_entropy():
    logits, features, labels, _, _ = _inputs(9, 0, 6, 2, seed=15)
    loss = CELoss(6, label_smoothing=0.1)(logits, features, labels)
    ref = balanced_softmax_reference(logits, labels, [1] * 6, tau=0.0, label_smoothing=0.1)
    torch.testing.assert_close(loss, ref, **TOL)


def test_registry():
    assert {'paco', 'gpaco', 'supcon', 'balanced_softmax', 'ce'} <= set(list_losses())
    assert list_losses('*paco') == ['gpaco', 'paco'] and is_loss('paco') and not is_loss('dscl_unknown')
    assert isinstance(create_loss('paco', num_classes=4, alpha=0.1), PaCoLoss)
    assert type(create_loss('gpaco', num_classes=4)) is GPaCoLoss
    assert isinstance(create_loss('balanced_softmax', num_classes=2, class_counts=[1, 2]), BalancedSoftmaxLoss)
    with pytest.raises(ValueError, match='not registered'):
        create_loss('no_such_loss', num_classes=3)
    with pytest.raises(ValueError, match='already registered'):
        register_loss('paco')(CELoss)

    @register_loss('test_only_plugin_loss')
    class PluginLoss(CELoss):
        pass
    try:
        assert isinstance(create_loss('test_only_plugin_loss', num_classes=3), PluginLoss)
    finally:
        del loss_registry._loss_entrypoints['test_only_plugin_loss']


def test_prior_buffer_moves_and_is_deterministic():
    a = PaCoLoss(3, class_counts=[5, 0, 1])
    b = PaCoLoss(3, class_counts=torch.tensor([5, 0, 1]))
    assert torch.equal(a.log_prior, b.log_prior) and a.log_prior.dtype == torch.float64
    torch.testing.assert_close(a.log_prior, torch.log(torch.tensor([5 / 6, 1e-9, 1 / 6], dtype=torch.float64)))
    assert 'log_prior' not in a.state_dict() and 'log_prior' in dict(a.named_buffers())
    assert PaCoLoss(3).log_prior is None
    assert a.to(torch.float32).log_prior.dtype == torch.float32  # moves with .to()


def _bad_call(**overrides):
    logits, features, labels, queue, qlabels = _inputs(4, 3, 5, 6, seed=16, dtype=torch.float32)
    call = dict(logits=logits, features=features, labels=labels, queue_features=queue, queue_labels=qlabels)
    call.update(overrides)
    return call


@pytest.mark.parametrize('overrides,match', [
    (dict(labels=torch.tensor([0, 1, 5, 2])), r'labels must lie in \[0, num_classes\)'),
    (dict(labels=torch.tensor([0, -1, 2, 2])), r'labels must lie in \[0, num_classes\)'),
    (dict(queue_labels=torch.tensor([0, 9, 1])), r'queue_labels must lie in \[0, num_classes\)'),
    (dict(logits=torch.randn(4, 6)), r'logits must have shape \[A, num_classes\] = \[4, 5\]'),
    (dict(features=torch.randn(4, 6, 1)), r'features must be 2-D'),
    (dict(features=torch.randn(3, 6)), r'features rows must match labels'),
    (dict(logits=torch.randn(3, 5)), r'logits rows must match labels'),
    (dict(labels=torch.tensor([0, 1, 2])), r'logits rows must match labels'),
    (dict(queue_features=torch.randn(3, 5)), r'queue_features must have shape \[N, D\] with D = 6'),
    (dict(queue_labels=torch.tensor([0, 1])), r'queue_labels must have shape \[N\] = \[3\]'),
    (dict(queue_labels=None), r'queue_features \[N, D\] and queue_labels \[N\] must be given together'),
    (dict(labels=torch.tensor([0., 1., 2., 3.])), r'labels must be an integer tensor'),
])
def test_bad_inputs_raise(overrides, match):
    crit = PaCoLoss(5)
    with pytest.raises(ValueError, match=match):
        crit(**_bad_call(**overrides))
    if 'logits' not in overrides:
        with pytest.raises(ValueError, match=match):
            SupConLoss(5)(**_bad_call(**overrides))


@pytest.mark.parametrize('counts,match', [
    ([1, 2, -1, 4, 5], 'non-negative'),
    ([1, 2, 3], r'class_counts must have shape \[num_classes\] = \[5\], got \[3\]'),
    ([0, 0, 0, 0, 0], 'at least one positive'),
])
def test_bad_class_counts_raise(counts, match):
    with pytest.raises(ValueError, match=match):
        PaCoLoss(5, class_counts=counts)
    with pytest.raises(ValueError, match=match):
        BalancedSoftmaxLoss(5, class_counts=counts)


def test_bad_hyper_parameters_raise():
    with pytest.raises(ValueError, match='alpha and beta cannot both be 0'):
        PaCoLoss(5, alpha=0.0, beta=0.0)
    with pytest.raises(ValueError, match='temperature'):
        PaCoLoss(5, temperature=0.0)
    with pytest.raises(ValueError, match='label_smoothing'):
        PaCoLoss(5, label_smoothing=1.0)
    with pytest.raises(ValueError, match='num_classes'):
        PaCoLoss(1, label_smoothing=0.1)
    with pytest.raises(ValueError, match='class_counts is required'):
        BalancedSoftmaxLoss(5, class_counts=None)
    with pytest.raises(ValueError, match='prior_tau=0.5 scales the class prior, but no class_counts'):
        PaCoLoss(5, prior_tau=0.5)
    with pytest.raises(ValueError, match='prior_tau must be a finite real number'):
        PaCoLoss(5, class_counts=[1] * 5, prior_tau=float('nan'))


@pytest.mark.parametrize('make,name', [
    (lambda v: PaCoLoss(5, temperature=v), 'temperature'),
    (lambda v: GPaCoLoss(5, alpha=v), 'alpha'),
    (lambda v: PaCoLoss(5, gamma=v), 'gamma'),
    (lambda v: PaCoLoss(5, label_smoothing=v), 'label_smoothing'),
    (lambda v: PaCoLoss(5, class_counts=[1] * 5, prior_tau=v), 'prior_tau'),
    (lambda v: SupConLoss(5, temperature=v), 'temperature'),
    (lambda v: BalancedSoftmaxLoss(5, class_counts=[1] * 5, tau=v), 'tau'),
    (lambda v: CELoss(5, label_smoothing=v), 'label_smoothing'),
])
@pytest.mark.parametrize('value', ['0.2', None, True])
def test_non_number_hyper_parameters_name_the_argument(make, name, value):
    with pytest.raises(ValueError, match=f'^{name} must be a finite real number, got {value!r}$'):
        make(value)


def test_class_counts_and_base_temperature_of_the_wrong_type_raise():
    with pytest.raises(ValueError, match="^base_temperature must be a finite real number, got 'x'$"):
        PaCoLoss(5, base_temperature='x')
    with pytest.raises(ValueError, match=r"class_counts must be a list or tensor of numbers \[num_classes\] = \[5\]"):
        PaCoLoss(5, class_counts='abc')
