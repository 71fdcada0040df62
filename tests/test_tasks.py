"""timm_paco.tasks: the task dicts against independent loss calls, key encoder / queue state, factory rules."""
import copy

import pytest
import timm
import torch
import torch.nn.functional as F

from timm_paco.losses import GPaCoLoss, PaCoLoss
from timm_paco.methods import create_task, is_long_tailed, resolve_logit_adjust
from timm_paco.tasks import ContrastiveModule, GPaCoTask, MultiViewClassificationTask, PaCoTask

NUM_CLASSES = 4
COUNTS = [40, 10, 4, 2]


PROJ = dict(proj_dim=8, proj_type='mlp3')


@pytest.fixture(scope='module')
def paco_model():
    """A plain timm model; the contrastive tasks put a PROJ projector beside it."""
    torch.manual_seed(0)
    return timm.create_model('test_convnext', num_classes=NUM_CLASSES)


def _contrastive(name, model, **kwargs):
    torch.manual_seed(5)
    return create_task(name, copy.deepcopy(model), projector=PROJ, verbose=False, **kwargs)


@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 32, 32, generator=g), torch.tensor([0, 1, 1, 3])


def test_ce_two_views_is_ce_over_every_view(paco_model, batch):
    x, y = batch
    task = create_task('ce', copy.deepcopy(paco_model), num_views=2, smoothing=0.0, verbose=False)
    assert isinstance(task, MultiViewClassificationTask) and task.model is task.trainable_module
    out = task(x, y)
    logits = task.model(x)
    torch.testing.assert_close(out['loss'], F.cross_entropy(logits, y.repeat(2)))
    torch.testing.assert_close(out['output'], logits[:4])


def test_balanced_softmax_adds_log_prior(paco_model, batch):
    x, y = batch
    task = create_task('balanced-softmax', copy.deepcopy(paco_model), class_counts=COUNTS, verbose=False)
    out = task(x[:4], y)
    prior = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    expected = F.cross_entropy(task.model(x[:4]).double() + prior.log(), y)
    torch.testing.assert_close(out['loss'].double(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='class_counts'):
        create_task('balanced-softmax', copy.deepcopy(paco_model), verbose=False)


@pytest.mark.parametrize('name', ['balanced-softmax', 'paco', 'gpaco'])
def test_prior_tau_scales_the_log_prior(paco_model, name):
    log_prior = torch.log(torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS) + 1e-9)
    crit = create_task(name, copy.deepcopy(paco_model), class_counts=COUNTS, prior_tau=0.5, verbose=False).criterion
    if name == 'balanced-softmax':
        assert crit.tau == 0.5
        torch.testing.assert_close(crit.adjust_logits(torch.zeros(1, NUM_CLASSES, dtype=torch.float64))[0],
                                   0.5 * log_prior)
    else:
        torch.testing.assert_close(crit.log_prior, 0.5 * log_prior)


def test_prior_tau_without_a_prior_raises(paco_model):
    with pytest.raises(ValueError, match='prior_tau=0.5: task ce uses no class prior'):
        create_task('ce', copy.deepcopy(paco_model), class_counts=COUNTS, prior_tau=0.5, verbose=False)
    with pytest.raises(ValueError, match='prior_tau=2.0: task gpaco uses no class prior'):
        create_task('gpaco', copy.deepcopy(paco_model), class_counts=COUNTS, logit_adjust='off', prior_tau=2.0,
                    verbose=False)


def test_paco_query_anchors_key_and_queue_contrast(paco_model, batch):
    x, y = batch
    task = _contrastive('paco', paco_model, class_counts=COUNTS, queue_size=6, momentum=0.9)
    model = task.module
    assert isinstance(task, PaCoTask) and task.criterion.log_prior is not None  # long-tailed counts: adjusted
    assert isinstance(model, ContrastiveModule) and task.model is model.backbone
    assert task.get_eval_model() is model.backbone  # evaluation sees the plain timm model
    reference = copy.deepcopy(model)  # the key encoder starts as a copy of the query module
    crit = PaCoLoss(NUM_CLASSES, class_counts=COUNTS)

    out = task(x, y)
    logits, q = reference(x[:4])
    with torch.no_grad():
        k = reference(x[4:])[1]
    expected = crit.loss_parts(logits, q, y, k, y)  # empty queue: the batch's keys are the only samples
    for name in ('loss', 'loss_centre', 'loss_contrast'):
        torch.testing.assert_close(out[name], expected[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out['output'], logits, rtol=1e-5, atol=1e-6)
    feats, labels = task.queue.get()
    torch.testing.assert_close(feats, k, rtol=1e-5, atol=1e-6)
    assert labels.tolist() == y.tolist()

    # an optimizer step, then the key encoder moves 10% of the way to the query model
    out['loss'].backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(0.1 * p.grad)
    before = {n: v.clone() for n, v in task.key_encoder.module.state_dict().items()}
    task.update_ema()
    after, query = task.key_encoder.module.state_dict(), model.state_dict()
    for n, v in before.items():
        if v.is_floating_point():
            torch.testing.assert_close(after[n], 0.9 * v + 0.1 * query[n])
    assert not any(p.requires_grad for p in task.key_encoder.parameters())

    # second step: the queue (4 old keys) joins the contrast set, 2 slots of 6 are overwritten (ring)
    out2 = task(x, y)
    logits2, q2 = model(x[:4])
    with torch.no_grad():
        k2 = task.key_encoder.module(x[4:])[1]
    expected2 = crit(logits2, q2, y, torch.cat([k2, feats]), torch.cat([y, labels]))
    torch.testing.assert_close(out2['loss'], expected2, rtol=1e-5, atol=1e-6)
    assert len(task.queue) == 6 and int(task.queue.ptr) == 2


def test_paco_task_state_round_trip(paco_model, batch):
    x, y = batch
    task = _contrastive('paco', paco_model, queue_size=8)
    task(x, y)
    task.key_encoder.module.projector[0].weight.data.add_(1.0)
    state = copy.deepcopy(task.get_task_state())
    assert task.get_task_state(ema=True) == {}  # no --model-ema copy
    assert set(state) == {'projector', 'projector_args', 'key_encoder', 'queue'}
    assert state['projector_args'] == dict(in_dim=64, out_dim=8, proj_type='mlp3', hidden_dim=64, act_layer='gelu')

    fresh = _contrastive('paco', paco_model, queue_size=8)
    fresh.load_task_state(state)
    for a, b in zip(fresh.key_encoder.module.state_dict().values(), state['key_encoder'].values()):
        assert torch.equal(a, b)
    for name, value in state['queue'].items():
        assert torch.equal(fresh.queue.state_dict()[name], value)
    with pytest.raises(ValueError, match='task_state'):
        fresh.load_task_state(None)
    with pytest.raises(ValueError, match='queue-size'):
        _contrastive('paco', paco_model, queue_size=4).load_task_state(state)


def test_checkpoint_state_round_trip(paco_model, batch):
    """A checkpoint's state_dict is the plain model's and the projector is task state; the training module's own
    keys (backbone.* / projector.*, a layout no checkpoint has) are refused, naming them."""
    x, y = batch
    task = _contrastive('gpaco', paco_model, queue_size=6)
    task(x, y)
    with torch.no_grad():
        task.module.projector[0].weight.add_(1.0)
    state = task.get_checkpoint_state()
    assert state['state_dict'].keys() == paco_model.state_dict().keys()
    assert set(state['task_state']) == {'projector', 'projector_args', 'queue'}
    with pytest.raises(ValueError, match='unexpected keys: backbone.stem.0.weight'):
        _contrastive('gpaco', paco_model, queue_size=6).load_checkpoint_state(task.module.state_dict(), {})
    fresh = _contrastive('gpaco', paco_model, queue_size=6)
    fresh.load_checkpoint_state(state['state_dict'], state['task_state'])
    for a, b in zip(fresh.module.state_dict().values(), task.module.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='no projector weights'):
        _contrastive('gpaco', paco_model, queue_size=6).load_checkpoint_state(
            paco_model.state_dict(), {'queue': state['task_state']['queue']})
    with pytest.raises(ValueError, match='--paco-proj-dim'):
        create_task('gpaco', copy.deepcopy(paco_model), projector=dict(proj_dim=4, proj_type='mlp3'), queue_size=6,
                    verbose=False).load_checkpoint_state(state['state_dict'], state['task_state'])
    task.setup_ema(decay=0.5)
    ema_state = task.get_checkpoint_state(ema=True)
    assert ema_state['state_dict_ema'].keys() == paco_model.state_dict().keys()
    assert set(ema_state['task_state_ema']) == {'projector', 'projector_args'}


@pytest.mark.parametrize('num_views', [1, 2])
def test_gpaco_every_view_is_an_anchor(paco_model, batch, num_views):
    x, y = batch
    x = x[:4 * num_views]
    task = _contrastive('gpaco', paco_model, num_views=num_views)
    assert isinstance(task, GPaCoTask) and task.criterion.label_smoothing == 0.1
    out = task(x, y)
    logits, emb = task.module(x)
    expected = GPaCoLoss(NUM_CLASSES).loss_parts(logits, emb, y.repeat(num_views))
    for name in ('loss', 'loss_centre', 'loss_contrast'):
        torch.testing.assert_close(out[name], expected[name], rtol=1e-5, atol=1e-6)
    assert out['output'].shape == (4, NUM_CLASSES)
    torch.testing.assert_close(out['output'], logits[:4])  # view 0's logits, as the seeds report them


def test_gpaco_queue_holds_earlier_last_view_embeddings(paco_model, batch):
    """The authors' GPaCo: last-view embeddings of earlier steps join the contrast set (8192 slots by default,
    every official GPaCo script's; 0 = the queue-free equations)."""
    x, y = batch
    assert len(_contrastive('gpaco', paco_model).queue) == 0 and _contrastive('gpaco', paco_model).queue.size == 8192
    assert _contrastive('gpaco', paco_model, queue_size=0).queue is None
    task = _contrastive('gpaco', paco_model, queue_size=6, smoothing=0.0)
    model, crit = task.module, task.criterion
    out1 = task(x, y)  # first step: an empty queue, the paper's loss
    logits, emb = model(x)
    torch.testing.assert_close(out1['loss'], crit.loss_parts(logits, emb, y.repeat(2))['loss'], rtol=1e-5, atol=1e-6)
    feats, labels = task.queue.get()
    torch.testing.assert_close(feats, emb[4:].detach())  # view 1 of the 4 images, detached
    assert torch.equal(labels, y) and not feats.requires_grad

    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    out2 = task(x, y)  # second step: the queue's 4 rows are contrast-only samples; 2 slots of 6 are rewritten
    logits2, emb2 = model(x)
    expected = crit.loss_parts(logits2, emb2, y.repeat(2), feats, labels)
    for name in ('loss', 'loss_centre', 'loss_contrast'):
        torch.testing.assert_close(out2[name], expected[name], rtol=1e-5, atol=1e-6)
    assert abs(out2['loss'].item() - crit.loss_parts(logits2, emb2, y.repeat(2))['loss'].item()) > 1e-3
    assert len(task.queue) == 6 and int(task.queue.ptr) == 2


def test_gpaco_queue_state(paco_model, batch, caplog):
    x, y = batch
    task = _contrastive('gpaco', paco_model, queue_size=6)
    task(x, y)
    state = copy.deepcopy(task.get_task_state())
    assert set(state) == {'queue', 'projector', 'projector_args'} and task.get_task_state(ema=True) == {}
    fresh = _contrastive('gpaco', paco_model, queue_size=6)
    fresh.load_task_state(state)
    for name, value in state['queue'].items():
        assert torch.equal(fresh.queue.state_dict()[name], value)
    assert len(fresh.queue) == 4
    with pytest.raises(ValueError, match=r'no gpaco queue: it was trained with --gpaco-queue-size 0 .*resume with --gpaco-queue-size 0'):
        fresh.load_task_state({})
    fresh.load_task_state(None, strict=False)
    assert len(fresh.queue) == 0 and 'queue emptied' in caplog.text
    with pytest.raises(ValueError, match=r'\[6, 8\] \(slots x dim\), this task \[4, 8\]: use the same --gpaco-queue'):
        _contrastive('gpaco', paco_model, queue_size=4).load_task_state(state)
    plain = _contrastive('gpaco', paco_model, queue_size=0)
    assert set(plain.get_task_state()) == {'projector', 'projector_args'}
    plain.load_task_state(None)
    with pytest.raises(ValueError, match='a gpaco queue of 6 slots, this task has none'):
        plain.load_task_state(state)
    with pytest.raises(ValueError, match=r'^queue_size must be an int >= 0 \(number of queue slots; 0 = no queue\)'):
        _contrastive('gpaco', paco_model, queue_size=-1)
    with pytest.raises(ValueError, match='queue_size=8: task ce takes no queue_size'):
        create_task('ce', copy.deepcopy(paco_model), queue_size=8, verbose=False)


def test_view_batch_shape_checked(paco_model, batch):
    x, y = batch
    task = create_task('gpaco', copy.deepcopy(paco_model), num_views=2, verbose=False)
    with pytest.raises(ValueError, match='num_views x B'):
        task(x[:6], y)


def test_factory_rules(paco_model):
    plain = timm.create_model('test_convnext', num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match='unknown task'):
        create_task('moco', plain)
    with pytest.raises(ValueError, match='task ce trains no projector'):
        create_task('ce', plain, projector=PROJ, verbose=False)
    with pytest.raises(ValueError, match='has its projector already'):
        create_task('paco', _contrastive('paco', plain).module, projector=PROJ, verbose=False)
    with pytest.raises(ValueError, match='2 views'):
        create_task('paco', copy.deepcopy(paco_model), num_views=3, verbose=False)
    with pytest.raises(ValueError, match='num_classes=4'):
        create_task('ce', plain, class_counts=[1, 2], verbose=False)
    for name, model in (('gpaco', paco_model), ('ce', plain)):  # 0 views is an error, not the default
        with pytest.raises(ValueError, match='num_views must be an int >= 1, got 0'):
            create_task(name, copy.deepcopy(model), num_views=0, verbose=False)
    with pytest.raises(ValueError, match='^momentum must be a finite real number, got None$'):
        create_task('paco', copy.deepcopy(paco_model), momentum=None, verbose=False)
    with pytest.raises(ValueError, match=r'^queue_size must be an int >= 1 \(number of queue slots\), got 0$'):
        create_task('paco', copy.deepcopy(paco_model), queue_size=0, verbose=False)

    assert is_long_tailed([100, 10]) and not is_long_tailed([1300, 732]) and is_long_tailed([5, 0])
    assert resolve_logit_adjust('paco', 'auto', [100, 10]) is True
    assert resolve_logit_adjust('gpaco', 'auto', [1300, 732]) is False
    assert resolve_logit_adjust('paco', 'off', [100, 10]) is False
    assert resolve_logit_adjust('paco', 'on', [5, 5]) is True
    assert resolve_logit_adjust('balanced-softmax', 'off', [5, 5]) is True
    assert resolve_logit_adjust('ce', 'on', [100, 1]) is False
    with pytest.raises(ValueError, match='class counts'):
        resolve_logit_adjust('paco', 'on', None)


def test_agc_clip_parameters_leave_out_the_classifier_not_the_projector(paco_model):
    task = _contrastive('paco', paco_model)
    model = task.module
    head = {id(p) for p in task.model.get_classifier().parameters()}
    kept = task.get_clip_parameters(exclude_head=True)
    assert len(head) == 2 and not head & {id(p) for p in kept}
    assert {id(p) for p in model.projector.parameters()} <= {id(p) for p in kept}
    assert len(kept) == len(list(model.parameters())) - 2
    assert len(list(task.get_clip_parameters())) == len(list(model.parameters()))
