"""The authors' BatchNorm batches: a task's ``per-view`` forward equals one forward per view (per PBSD patch group)
run by hand — logits, embeddings, loss, every gradient and the running statistics — and ``joint`` (one forward of
all rows) differs for a BatchNorm model but not for a LayerNorm ViT."""
import copy

import pytest
import timm
import torch

from timm_paco.data.patch_batch import PatchBatch
from timm_paco.methods import create_task

B = 4
NUM_CLASSES = 3
PROJ = dict(proj_dim=8, proj_type='mlp')
DSCL_PROJ = dict(proj_dim=8, proj_type='mlp2')  # the authors' DSCL head: Linear-ReLU-Linear, no BatchNorm


def _batch(size=32):
    g = torch.Generator().manual_seed(3)
    return torch.randn(2 * B, 3, size, size, generator=g), torch.tensor([0, 1, 1, 2])


def _task(name, model_name, view_forward, **kwargs):
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=NUM_CLASSES)
    return create_task(name, model, view_forward=view_forward, verbose=False, **kwargs)


def _bn_buffers(module):
    return {k: v.clone() for k, v in module.state_dict().items()
            if k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))}


def _grads(module):
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _assert_same(a, b, what, exact=False):
    assert a.keys() == b.keys() and a, what
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), f'{what} {key}'
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f'{what} {key}')


def _run_task(task, x, y):
    task.train()
    out = task(x, y)
    out['loss'].backward()
    return out


@pytest.mark.parametrize('name, kwargs', [
    ('gpaco', dict(projector=PROJ, queue_size=0)),
    ('ce', dict(num_views=2)),
])
def test_per_view_forward_equals_one_forward_per_view_by_hand(name, kwargs):
    x, y = _batch()
    task = _task(name, 'test_resnet', 'per-view', **kwargs)
    hand = copy.deepcopy(task.module)  # the same initial weights and statistics
    out = _run_task(task, x, y)

    hand.train()
    views = [hand(view) for view in x.split(B)]  # the authors' code: the encoder called once per view
    if name == 'gpaco':
        logits = torch.cat([v[0] for v in views])
        parts = task.criterion.loss_parts(logits, torch.cat([v[1] for v in views]), y.repeat(2))
        loss = parts['loss']
    else:
        logits = torch.cat(views)
        loss = task.criterion(logits, None, y.repeat(2))
    loss.backward()
    torch.testing.assert_close(out['loss'], loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out['output'], logits[:B])
    _assert_same(_grads(task.module), _grads(hand), 'gradient')
    _assert_same(_bn_buffers(task.module), _bn_buffers(hand), 'BatchNorm statistic')
    assert int(_bn_buffers(task.module)['bn1.num_batches_tracked' if name == 'ce' else
                                         'backbone.bn1.num_batches_tracked']) == 2  # one update per view

    joint = _task(name, 'test_resnet', 'joint', **kwargs)
    joint_out = _run_task(joint, x, y)
    assert abs(float(joint_out['loss'].detach() - out['loss'].detach())) > 1e-4  # BatchNorm over the mixed 2B batch differs


def test_per_view_and_joint_are_the_same_for_a_layernorm_vit():
    x, y = _batch()
    kwargs = dict(projector=dict(proj_dim=8, proj_type='mlp3'), queue_size=0)
    per_view = _task('gpaco', 'test_vit', 'per-view', **kwargs)
    joint = _task('gpaco', 'test_vit', 'joint', **kwargs)
    a, b = _run_task(per_view, x, y), _run_task(joint, x, y)
    for key in ('loss', 'loss_centre', 'loss_contrast', 'output'):
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    _assert_same(_grads(per_view.module), _grads(joint.module), 'gradient')


def _patch_batch():
    g = torch.Generator().manual_seed(4)
    views = torch.randn(2 * B, 3, 32, 32, generator=g)
    boxes = torch.tensor([[4., 4., 28., 20.], [0., 8., 16., 32.]]).repeat_interleave(B, 0).reshape(2, B, 4)
    return PatchBatch(views, torch.randn(2 * B, 3, 32, 32, generator=g), boxes)


def test_pbsd_students_are_one_forward_per_patch_group():
    batch = _patch_batch()
    task = _task('dscl', 'test_resnet', 'per-view', projector=DSCL_PROJ, queue_size=16)
    hand = copy.deepcopy(task.module)
    task.train()
    logits, queries, teacher, student = task.trainable_module(batch.views[:B], batch.patches, batch.boxes)

    hand.train()
    ref_logits, ref_queries = hand(batch.views[:B])  # the query first, then each patch group of B (the authors')
    ref_student = torch.stack([hand(group)[1] for group in batch.patches.split(B)])
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(queries, ref_queries)
    torch.testing.assert_close(student, ref_student)
    _assert_same(_bn_buffers(task.module), _bn_buffers(hand), 'BatchNorm statistic')
    (student.sum() + queries.sum()).backward()
    (ref_student.sum() + ref_queries.sum()).backward()
    _assert_same(_grads(task.module), _grads(hand), 'gradient')

    joint = _task('dscl', 'test_resnet', 'joint', projector=DSCL_PROJ, queue_size=16)
    joint.train()
    joint_student = joint.trainable_module(batch.views[:B], batch.patches, batch.boxes, joint_patches=True)[3]
    assert (joint_student - student).abs().max() > 1e-4  # all L·B patches in one BatchNorm batch


def test_view_forward_is_checked_by_name():
    with pytest.raises(ValueError, match=r"view_forward must be one of \('per-view', 'joint'\), got 'mixed'"):
        _task('ce', 'test_resnet', 'mixed')
