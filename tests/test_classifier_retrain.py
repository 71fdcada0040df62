"""--classifier-retrain crt / lws: exactly the classifier (cRT) or only the per-class scales (LWS) change, BatchNorm
statistics do not, the model stays a plain timm model, and a resume restores the LWS state exactly."""
import pytest
import timm
import torch

from timm_paco.losses import create_loss
from timm_paco.methods import create_task
from timm_paco.tasks import ClassifierRetrainTask

NUM_CLASSES = 4


def _stage1(seed=0):
    torch.manual_seed(seed)
    model = timm.create_model('resnet18', num_classes=NUM_CLASSES)
    with torch.no_grad():  # BatchNorm statistics and a classifier that are not the initial ones
        model.train()(torch.randn(8, 3, 32, 32))
        model.get_classifier().weight.mul_(3.0)
        model.get_classifier().bias.add_(0.5)
    return model


def _steps(task, steps=3, lr=0.5):
    params = [p for p in task.get_trainable_module().parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr)
    target = torch.tensor([0, 1, 2, 3])
    for _ in range(steps):
        task.get_trainable_module().train()
        loss = task(torch.randn(4, 3, 32, 32), target)['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        task.update_ema()
    return params


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_crt_trains_exactly_a_reinitialised_classifier():
    model = _stage1()
    before = _snapshot(model)
    task = create_task('ce', model, classifier_retrain='crt', verbose=False)
    assert isinstance(task, ClassifierRetrainTask) and task.model is model
    reset = _snapshot(model)
    assert not torch.equal(reset['fc.weight'], before['fc.weight'])  # re-initialised
    params = _steps(task)
    assert {id(p) for p in params} == {id(p) for p in model.get_classifier().parameters()}
    after = _snapshot(model)
    for key, value in before.items():
        if key.startswith('fc.'):
            assert not torch.equal(after[key], reset[key]), key
        else:  # weights and BatchNorm running statistics (and their counters) untouched
            assert torch.equal(after[key], value), key
    assert task.get_eval_model() is model and set(task.get_checkpoint_state()['state_dict']) == set(before)


def test_lws_learns_only_per_class_scales_folded_into_a_plain_classifier():
    model = _stage1()
    before = _snapshot(model)
    task = create_task('balanced-softmax', model, class_counts=[8, 4, 2, 1], classifier_retrain='lws',
                       verbose=False)
    params = _steps(task)
    assert len(params) == 1 and params[0] is task.module.scales and params[0].shape == (NUM_CLASSES,)
    scales = task.module.scales.detach()
    assert not torch.allclose(scales, torch.ones(NUM_CLASSES))
    after = _snapshot(model)
    torch.testing.assert_close(after['fc.weight'], before['fc.weight'] * scales[:, None])
    torch.testing.assert_close(after['fc.bias'], before['fc.bias'] * scales)
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith('fc.'))
    # the plain model gives the logits the task trained
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(model(x), task.get_trainable_module().eval()(x))


def test_lws_resumes_exactly_from_its_task_state():
    task = create_task('ce', _stage1(), classifier_retrain='lws', verbose=False)
    _steps(task, steps=2)
    state = task.get_checkpoint_state()
    assert set(state['task_state']['lws']) == {'scales', 'weight0', 'bias0'}
    other = create_task('ce', _stage1(seed=1), classifier_retrain='lws', verbose=False)
    other.load_checkpoint_state(state['state_dict'], state['task_state'])
    for name in ('scales', 'weight0', 'bias0'):
        assert torch.equal(getattr(other.module, name), getattr(task.module, name)), name
    with pytest.raises(ValueError, match='no lws task_state'):
        other.load_checkpoint_state(state['state_dict'], {})


def test_retrain_takes_only_the_ce_family():
    with pytest.raises(ValueError, match='classifier_retrain=.crt.: task paco does not train a second-stage classifier'):
        create_task('paco', _stage1(), classifier_retrain='crt', verbose=False)
    with pytest.raises(ValueError, match='^mode must be one of crt, lws'):
        ClassifierRetrainTask(_stage1(), create_loss('ce', num_classes=NUM_CLASSES), mode='tau')
