"""CUDA paths, skipped where no GPU is present (CI has none; run on a lent GPU):

* PaCoLoss / GPaCoLoss on the GPU against the float64 reference, values and gradients;
* fp16 / bf16 autocast: the loss is float32 and equals the float32 loss of the upcast inputs;
* train.py on real Fashion-MNIST images: fp16 autocast with timm's grad scaler and bf16 autocast, both with
  channels_last, for paco and gpaco; torch.compile of the paco task.
"""
import os

import pytest
import torch
import torch.nn.functional as F

from reference_losses import paco_dense_reference, paco_reference
from test_train import _args, _checkpoint, _summary, train
from timm_paco.losses import GPaCoLoss, PaCoLoss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


@pytest.fixture(autouse=True)
def _no_tf32():
    # the reference comparison is of float32 arithmetic; TF32 matmuls would round to 10 bits
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


def _inputs(anchors, queue, classes, dim, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(anchors, classes, generator=g, dtype=torch.float64) * scale
    features = F.normalize(torch.randn(anchors, dim, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, classes, (anchors,), generator=g)
    queue_features = F.normalize(torch.randn(queue, dim, generator=g, dtype=torch.float64), dim=1)
    queue_labels = torch.randint(0, classes, (queue,), generator=g)
    return logits, features, labels, queue_features, queue_labels


def _loss_and_grads(fn, tensors, labels, queue_labels):
    """(loss, grad of each tensor) for fn(logits, features, labels, queue, queue_labels); queue may be None."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in tensors]
    loss = fn(leaves[0], leaves[1], labels, leaves[2], queue_labels)
    return (loss, *torch.autograd.grad(loss, [t for t in leaves if t is not None]))


CASES = {
    'paco-lt': (PaCoLoss, dict(class_counts=[50, 30, 20, 10, 5, 3, 2, 1]), 12, 40, 8),
    'paco': (PaCoLoss, dict(alpha=0.1, gamma=0.5), 12, 40, 8),
    'gpaco': (GPaCoLoss, dict(), 16, 0, 8),
}


@pytest.mark.parametrize('case', list(CASES))
def test_loss_on_cuda_matches_float64_reference(case):
    cls, kwargs, anchors, queue, classes = CASES[case]
    logits, features, labels, q, ql = _inputs(anchors, max(queue, 1), classes, 16, seed=3)
    if not queue:  # GPaCo: the batch is the whole contrast set
        q = ql = None
    crit = cls(classes, **kwargs).cuda()
    cuda = [None if t is None else t.float().cuda() for t in (logits, features, q)]
    got = _loss_and_grads(crit, cuda, labels.cuda(), None if ql is None else ql.cuda())
    ref_kwargs = dict(num_classes=classes, label_smoothing=crit.label_smoothing, alpha=crit.alpha,
                      gamma=crit.gamma, temperature=crit.temperature, class_counts=kwargs.get('class_counts'))

    def reference(*args):
        return paco_reference(*args, **ref_kwargs)[0]

    want = _loss_and_grads(reference, [logits, features, q], labels, ql)
    assert len(got) == len(want) == (3 if q is None else 4)
    for name, a, b in zip(('loss', 'logits.grad', 'features.grad', 'queue.grad'), got, want):
        assert a.is_cuda and a.dtype == torch.float32, name
        torch.testing.assert_close(a.double().cpu(), b, rtol=1e-5, atol=1e-6, msg=name)


def test_loss_on_cuda_matches_dense_reference_at_benchmark_size():
    # the first benchmark configuration (256 anchors, 8192 queue, 1000 classes) against the vectorised reference
    logits, features, labels, q, _ = _inputs(256, 8192, 1000, 128, seed=4)
    ql = (torch.rand(8192, generator=torch.Generator().manual_seed(5)) ** 3 * 1000).long()
    counts = torch.bincount(ql, minlength=1000)
    crit = PaCoLoss(1000, class_counts=counts).cuda()
    got = _loss_and_grads(crit, [t.float().cuda() for t in (logits, features, q)], labels.cuda(), ql.cuda())

    def reference(lo, fe, la, qf, qlab):
        return paco_dense_reference(lo, fe, la, qf, qlab, num_classes=1000, class_counts=counts)

    want = _loss_and_grads(reference, [logits, features, q], labels, ql)
    for name, a, b in zip(('loss', 'logits.grad', 'features.grad', 'queue.grad'), got, want):
        torch.testing.assert_close(a.double().cpu(), b, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
def test_autocast_loss_is_float32_on_upcast_inputs(dtype):
    logits, features, labels, q, ql = _inputs(32, 64, 10, 16, seed=6)
    head = torch.nn.Linear(16, 10).cuda()
    crit = PaCoLoss(10, label_smoothing=0.1, class_counts=list(range(1, 11))).cuda()
    features, q, labels, ql = features.float().cuda(), q.float().cuda(), labels.cuda(), ql.cuda()
    with torch.autocast('cuda', dtype=dtype):
        low_logits = head(features) * 1e3  # half-precision activations of large magnitude
        assert low_logits.dtype == dtype
        loss = crit(low_logits, features.to(dtype), labels, q.to(dtype), ql)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    expected = crit(low_logits.float(), features.to(dtype).float(), labels, q.to(dtype).float(), ql)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


TRAIN_CASES = [('paco', 'float16'), ('gpaco', 'float16'), ('paco', 'bfloat16'), ('gpaco', 'bfloat16')]


@pytest.mark.parametrize('task,amp_dtype', TRAIN_CASES, ids=[f'{t}-{d}' for t, d in TRAIN_CASES])
def test_train_amp_channels_last(image_folder, tmp_path, task, amp_dtype):
    name = f'{task}-{amp_dtype}'
    train.main(_args(image_folder, tmp_path, name, '--task', task, '--epochs', '2', '--amp',
                     '--amp-dtype', amp_dtype, '--channels-last', device='cuda'))
    rows = _summary(tmp_path / name)
    for row in rows:
        for key in ('train_loss', 'train_loss_centre', 'train_loss_contrast', 'eval_loss'):
            assert torch.isfinite(torch.tensor(float(row[key]))), key
    saved = _checkpoint(tmp_path / name)
    # the optimizer stepped in the second epoch (fp16: the grad scaler may skip a few early steps on overflow,
    # so the loss of 2 tiny epochs need not fall)
    first = _checkpoint(tmp_path / name, 'checkpoint-0.pth.tar')
    assert any(not torch.equal(v, first['state_dict'][k]) for k, v in saved['state_dict'].items())
    assert all(v.dtype == torch.float32 for v in saved['state_dict'].values() if v.is_floating_point())
    if amp_dtype == 'float16':  # timm's NativeScaler ran and its state went into the checkpoint
        assert saved['amp_scaler']['scale'] > 0
    else:
        assert 'amp_scaler' not in saved


def test_train_torchcompile_paco(image_folder, tmp_path):
    train.main(_args(image_folder, tmp_path, 'compiled', '--task', 'paco', '--epochs', '1', '--amp',
                     '--amp-dtype', 'bfloat16', '--torchcompile', device='cuda'))
    row = _summary(tmp_path / 'compiled')[0]
    assert torch.isfinite(torch.tensor(float(row['train_loss'])))
    saved = _checkpoint(tmp_path / 'compiled')
    assert not any(k.startswith('_orig_mod') for k in saved['state_dict'])  # saved unwrapped
    assert int(saved['task_state']['queue']['valid'].sum()) == 8
    assert os.path.isfile(tmp_path / 'compiled' / 'class_counts.json')
