"""BCL (``--task bcl``): its loss against the float64 reference written from the paper's formula (values and
gradients, classes absent from the batch, a class with one sample, autocast), its task, and train.py end to end
(trains, resumes exactly, validate.py reads the checkpoint)."""
import json
import os

import pytest
import timm
import torch
import torch.nn.functional as F

from reference_losses import bcl_reference
from timm_paco.losses.bcl import BCLLoss
from timm_paco.methods import create_task, get_method
from _cli import TRAIN, VALIDATE, run_here

NUM_CLASSES = 6
COUNTS = [50, 20, 9, 4, 2, 1]


def _inputs(batch, views, dim=8, labels=None, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=g) if labels is None else torch.tensor(labels)
    logits = torch.randn(batch, NUM_CLASSES, generator=g, dtype=dtype).requires_grad_()
    features = F.normalize(torch.randn(views * batch, dim, generator=g, dtype=dtype), dim=1).requires_grad_()
    centres = F.normalize(torch.randn(NUM_CLASSES, dim, generator=g, dtype=dtype), dim=1).requires_grad_()
    return logits, features, labels, centres


def _grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize('labels,views', [
    (None, 2),  # random labels over 6 classes
    ([0, 0, 1, 1, 2, 0], 2),  # classes 3-5 absent from the batch: present only as centres
    ([0, 1, 1, 2, 2, 2], 1),  # class 0 has one sample and one view: its only positive is its centre
])
def test_loss_and_gradients_equal_the_float64_reference(labels, views):
    logits, features, labels_t, centres = _inputs(6, views, labels=labels)
    loss = BCLLoss(NUM_CLASSES, COUNTS, prior_tau=0.5, contrast_weight=0.35, temperature=0.1, label_smoothing=0.1)
    parts = loss.loss_parts(logits, features, labels_t, centres)
    expected = bcl_reference(logits, features, labels_t, centres, COUNTS, prior_tau=0.5, contrast_weight=0.35,
                             temperature=0.1, label_smoothing=0.1)
    for got, want in zip((parts['loss'], parts['loss_ce'], parts['loss_contrast']), expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for got, want in zip(_grads(parts['loss'], logits, features, centres),
                         _grads(expected[0], logits, features, centres)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_under_autocast_the_loss_is_float32_and_matches_the_reference():
    logits, features, labels, centres = _inputs(8, 2, dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        parts = BCLLoss(NUM_CLASSES, COUNTS).loss_parts(logits.bfloat16(), features.bfloat16(), labels,
                                                        centres.bfloat16())
    assert all(v.dtype == torch.float32 for v in parts.values())
    expected = bcl_reference(logits.bfloat16().double(), F.normalize(features.bfloat16().double(), dim=1), labels,
                             F.normalize(centres.bfloat16().double(), dim=1), COUNTS)
    torch.testing.assert_close(parts['loss'].double(), expected[0], rtol=2e-2, atol=2e-2)


def test_bad_inputs_name_the_argument():
    logits, features, labels, centres = _inputs(4, 2)
    loss = BCLLoss(NUM_CLASSES, COUNTS)
    with pytest.raises(ValueError, match=r'^centres must have shape \[num_classes, D\] = \[6, 8\]'):
        loss(logits, features, labels, centres[:5])
    with pytest.raises(ValueError, match='features must hold V x B rows'):
        loss(logits, features[:7], labels, centres)
    with pytest.raises(ValueError, match='features .* L2-normalised|normalised'):
        loss(logits, features.detach() * 2, labels, centres)
    with pytest.raises(ValueError, match='contrast_weight must be >= 0'):
        BCLLoss(NUM_CLASSES, COUNTS, contrast_weight=-1)
    with pytest.raises(ValueError, match='class_counts: bcl needs the training class counts'):
        create_task('bcl', timm.create_model('test_convnext', num_classes=NUM_CLASSES), verbose=False)


def test_task_classifies_view_0_and_contrasts_the_others_through_the_classifier():
    torch.manual_seed(0)
    model = timm.create_model('test_convnext', num_classes=NUM_CLASSES)
    task = create_task('bcl', model, class_counts=COUNTS, verbose=False)
    method = get_method('bcl')
    assert (method.views, method.view_forward, task.num_views) == ('randcls_sim_sim', 'joint', 3)
    assert task.module.projector.config['out_dim'] == 1024 and task.module.centre_projector.config['out_dim'] == 1024
    x, y = torch.randn(3 * 4, 3, 32, 32), torch.tensor([0, 1, 1, 5])
    out = task(x, y)
    assert out['output'].shape == (4, NUM_CLASSES)
    torch.testing.assert_close(out['loss'], out['loss_ce'] + 0.35 * out['loss_contrast'])
    # the contrastive term alone reaches the classifier's weights (through the centres) and the centre MLP
    out['loss_contrast'].backward()
    assert model.get_classifier().weight.grad.abs().sum() > 0
    assert task.module.centre_projector[0].weight.grad.abs().sum() > 0
    assert set(task.get_task_state()) == {'projector', 'projector_args', 'centre_projector'}


def test_bcl_trains_resumes_exactly_and_validates(image_folder, tmp_path, capsys):
    common = ['--data-dir', image_folder, '--model', 'test_convnext', '--img-size', '32', '--num-classes', '4',
              '-b', '4', '--lr', '0.02', '--warmup-epochs', '0', '--device', 'cpu', '--workers', '0', '--seed', '0',
              '--output', str(tmp_path), '--task', 'bcl', '--epochs', '2', '--bcl-lambda', '0.5',
              '--paco-proj-dim', '16', '--no-prefetcher']
    assert run_here(capsys, TRAIN + common + ['--experiment', 'straight'])[0] == 0
    straight = torch.load(tmp_path / 'straight' / 'last.pth.tar', map_location='cpu', weights_only=False)
    assert straight['args'].view_forward == 'joint' and straight['args'].bcl_lambda == 0.5
    assert set(straight['task_state']) == {'projector', 'projector_args', 'centre_projector'}
    code = run_here(capsys, TRAIN + common + ['--experiment', 'resumed', '--resume',
                                              str(tmp_path / 'straight' / 'checkpoint-0.pth.tar')])[0]
    assert code == 0
    resumed = torch.load(tmp_path / 'resumed' / 'last.pth.tar', map_location='cpu', weights_only=False)
    for key in ('state_dict',):
        assert straight[key].keys() == resumed[key].keys()
        assert all(torch.equal(straight[key][k], resumed[key][k]) for k in straight[key])
    for name, value in straight['task_state']['centre_projector'].items():
        assert torch.equal(value, resumed['task_state']['centre_projector'][name]), name
    results = tmp_path / 'results.json'
    code, _, err = run_here(capsys, VALIDATE + [
        '--data-dir', image_folder, '--split', 'validation', '--model', 'test_convnext', '--num-classes', '4',
        '--img-size', '32', '--device', 'cpu', '--workers', '0', '--checkpoint',
        str(tmp_path / 'straight' / 'last.pth.tar'), '--results-file', str(results), '--results-format', 'json'])
    assert code == 0, err
    with open(results) as f:
        assert json.load(f)['images'] == 8
    assert os.path.isfile(tmp_path / 'straight' / 'class_counts.json')
