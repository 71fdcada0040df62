"""PBSD loss against the independent float64 per-(patch, image) reference; no gradient to the teacher."""
import pytest
import torch
import torch.nn.functional as F

from timm_paco.losses import PBSDLoss
from reference_losses import pbsd_reference


def _inputs(patches=5, batch=3, queue=7, dim=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def unit(*shape):
        return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1).to(dtype).requires_grad_()
    return unit(patches, batch, dim), unit(patches, batch, dim), unit(batch, dim), unit(queue, dim)


@pytest.mark.parametrize('shape', [(5, 3, 7), (1, 1, 4), (2, 4, 0)], ids=['recipe', 'one patch', 'empty queue'])
@pytest.mark.parametrize('temperature', [0.07, 0.5])
def test_matches_the_reference_and_leaves_the_teacher_alone(shape, temperature):
    teacher, student, keys, queue = _inputs(*shape)
    loss = PBSDLoss(temperature)(teacher, student, keys, queue)
    grads = torch.autograd.grad(loss, (teacher, student, keys, queue), allow_unused=True)
    assert grads[0] is None  # stop-gradient on the teacher
    inputs = [x.detach().clone().requires_grad_() for x in (student, keys, queue)]
    ref = pbsd_reference(teacher, *inputs, temperature=temperature)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads[1:], torch.autograd.grad(ref, inputs, allow_unused=True)):
        if want is None:
            assert got is None or not got.abs().any()
        else:
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_empty_queue_leaves_one_candidate_and_no_loss():
    teacher, student, keys, queue = _inputs(3, 2, 0)
    assert PBSDLoss()(teacher, student, keys, queue).item() == 0.0  # softmax over the own key alone is 1


def test_student_equal_to_teacher_is_the_minimum():
    teacher, _, keys, queue = _inputs()
    same = PBSDLoss()(teacher, teacher.detach().clone().requires_grad_(), keys, queue)
    other = PBSDLoss()(teacher, _inputs(seed=1)[1], keys, queue)
    assert same < other  # cross-entropy is smallest at the teacher's own distribution


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_under_autocast(dtype):
    teacher, student, keys, queue = _inputs(dim=16, dtype=dtype)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = PBSDLoss()(teacher, student, keys, queue)
    assert loss.dtype == torch.float32
    ref = pbsd_reference(*(x.detach().double() for x in (teacher, student, keys, queue)))
    torch.testing.assert_close(loss.double(), ref, rtol=2e-5, atol=2e-5)


def test_bad_input_is_one_clear_error():
    teacher, student, keys, queue = _inputs()
    loss = PBSDLoss()
    with pytest.raises(ValueError, match=r'teacher and student must have the same shape \[L, B, D\]'):
        loss(teacher[:2], student, keys, queue)
    with pytest.raises(ValueError, match='at least one patch'):
        loss(teacher[:0], student[:0], keys, queue)
    with pytest.raises(ValueError, match=r'keys must have shape \[B, D\] = \[3, 8\]'):
        loss(teacher, student, keys[:2], queue)
    with pytest.raises(ValueError, match=r'student must be L2-normalised rows'):
        loss(teacher, student.detach() * 2, keys, queue)
    with pytest.raises(ValueError, match=r'queue must be a floating-point tensor of shape \[K, D\]'):
        loss(teacher, student, keys, queue[0])
    with pytest.raises(ValueError, match='temperature'):
        PBSDLoss(temperature=0)
