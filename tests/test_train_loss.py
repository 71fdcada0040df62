"""timm 1.0.31's loss flags in train.py: ``--task classification``, ``--loss``, ``--class-stats`` (timm's class
statistics JSON) and ``--loss-class-weight`` / ``--loss-weight-power``, also on the softmax cross-entropy (against
float64 formulas), and the one-line refusals where a flag cannot apply."""
import json

import pytest
import torch
import yaml
from timm.loss import load_class_stats

from timm_paco import train
from timm_paco.cli.train_args import parse_args
from timm_paco.cli.train_loss import loss_class_weight
from timm_paco.cli.usage import UsageError
from timm_paco.losses import CELoss

from reference_losses import effective_num_weights, inv_freq_weights, weighted_ce_reference

NUM_CLASSES = 4  # conftest's image_folder: 4 training images per class
STATS_COUNTS = [40, 20, 10, 5]


def _args(image_folder, output, experiment, *extra):
    return ['--data-dir', image_folder, '--model', 'test_convnext', '--img-size', '32', '--num-classes',
            str(NUM_CLASSES), '-b', '4', '--lr', '0.02', '--warmup-epochs', '0', '--epochs', '1', '--device', 'cpu',
            '--workers', '0', '--seed', '0', '--log-interval', '2', '--output', str(output), '--experiment',
            experiment, *extra]


def _stats_file(path):
    """A class statistics file as timm's class_weights.py writes one for single-label targets."""
    path.write_text(json.dumps(dict(pos_counts=STATS_COUNTS, num_samples=sum(STATS_COUNTS),
                                    class_names=['t-shirt', 'trouser', 'pullover', 'dress'])))
    counts, num_samples = load_class_stats(str(path))  # timm reads it as its own
    assert counts.tolist() == STATS_COUNTS and num_samples == 75
    return str(path)


@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_weighted_cross_entropy_matches_the_formula(smoothing):
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(10, 4, generator=g)).requires_grad_()
    labels = torch.tensor([0, 1, 2, 3, 0, 0, 1, 3, 3, 2])
    weight = torch.tensor([0.2, 0.5, 1.3, 2.0])
    loss = CELoss(4, smoothing, class_weight=weight)(logits, None, labels)
    ref_logits = logits.detach().double().requires_grad_()
    ref = weighted_ce_reference(ref_logits, labels, weight, smoothing)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-7)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(logits.grad.double(), ref_logits.grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r'class_weight: expected one weight per class, shape \(4,\)'):
        CELoss(4, class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match='class_weight: expected finite, non-negative'):
        CELoss(4, class_weight=[1.0, -2.0, 1.0, 1.0])


def test_class_weights_from_the_counts_match_the_formulas():
    def weights(*flags, counts=STATS_COUNTS):
        _, args = parse_args(['--num-classes', str(NUM_CLASSES), *flags])
        return loss_class_weight(args, counts)

    torch.testing.assert_close(weights('--loss-class-weight', 'inv_freq').double(), inv_freq_weights(STATS_COUNTS))
    torch.testing.assert_close(weights('--loss-class-weight', 'inv_freq', '--loss-weight-power', '0.5').double(),
                               inv_freq_weights(STATS_COUNTS, 0.5))
    torch.testing.assert_close(weights('--loss-class-weight', 'effective_num').double(),
                               effective_num_weights(STATS_COUNTS))
    assert weights('--loss-class-weight', '1,2,3,4').tolist() == [1, 2, 3, 4]
    assert weights('--loss-class-weight', '0.5').tolist() == [0.5] * 4
    assert weights() is None
    with pytest.raises(UsageError, match='--loss-class-weight 1,2,3: 3 weights, but the model has 4 classes'):
        weights('--loss-class-weight', '1,2,3')
    with pytest.raises(UsageError, match="--loss-class-weight neg_pos: Method 'neg_pos' computes pos_weight"):
        weights('--loss-class-weight', 'neg_pos')
    with pytest.raises(UsageError, match='needs the training class counts.*--class-stats FILE'):
        weights('--loss-class-weight', 'inv_freq', counts=None)


def test_class_stats_weigh_the_cross_entropy_of_task_classification(image_folder, tmp_path, monkeypatch):
    """timm's ``--task classification`` is CE; ``--class-stats`` replaces the counted labels (4 per class here) as
    the class counts, and ``--loss-class-weight inv_freq`` weighs CE's classes by them."""
    built = {}
    create = train.create_train_task
    monkeypatch.setattr(train, 'create_train_task', lambda *a, **k: built.setdefault('task', create(*a, **k)))
    stats = _stats_file(tmp_path / 'stats.json')
    train.main(_args(image_folder, tmp_path, 'weighted', '--task', 'classification', '--class-stats', stats,
                     '--loss-class-weight', 'inv_freq', '--loss-weight-power', '0.5'))
    folder = tmp_path / 'weighted'
    recorded = yaml.safe_load((folder / 'args.yaml').read_text())
    assert recorded['task'] == 'ce' and recorded['class_stats'] == stats
    assert json.loads((folder / 'class_counts.json').read_text())['class_counts'] == STATS_COUNTS
    criterion = built['task'].criterion
    assert type(criterion) is CELoss and criterion.label_smoothing == 0.1  # CE's own smoothing
    torch.testing.assert_close(criterion.class_weight, inv_freq_weights(STATS_COUNTS, 0.5), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('flags,criterion', [
    (['--loss', 'poly', '--poly-epsilon', '1'], 'PolyCrossEntropy'),
    (['--bce-loss', '--loss-class-weight', 'effective_num'], 'BinaryCrossEntropy'),
])
def test_timm_losses_train(image_folder, tmp_path, monkeypatch, flags, criterion):
    built = {}
    create = train.create_train_task
    monkeypatch.setattr(train, 'create_train_task', lambda *a, **k: built.setdefault('task', create(*a, **k)))
    results = train.main(_args(image_folder, tmp_path, 'timm-loss', *flags))
    assert type(built['task'].criterion).__name__ == criterion
    assert torch.isfinite(torch.tensor(results[-1]['train']['loss']))
    recorded = yaml.safe_load((tmp_path / 'timm-loss' / 'args.yaml').read_text())
    assert recorded['loss'] == flags[1] if flags[0] == '--loss' else recorded['loss'] == 'bce'
    if '--loss-class-weight' in flags:
        counts = [4] * NUM_CLASSES  # counted from the folder: equal counts, equal weights
        torch.testing.assert_close(built['task'].criterion.weight.double(), effective_num_weights(counts))


@pytest.mark.parametrize('flags,message', [
    (['--task', 'paco', '--loss', 'bce'], '--loss bce replaces the loss of --task ce with timm\'s'),
    (['--loss', 'asl', '--paco-views', 'randcls_sim'], 'got --task ce with 2 view(s)'),
    (['--loss', 'zlpr'], '--loss zlpr: a multi-label loss'),
    (['--bce-loss', '--loss', 'asl'], '--bce-loss means --loss bce; it does not combine with --loss asl'),
    (['--loss', 'jsd'], '--loss jsd (--jsd-loss)'),
    (['--task', 'paco', '--loss-class-weight', 'inv_freq'],
     '--loss-class-weight weighs the cross-entropy of --task ce (or --loss bce); --task paco has its own loss'),
    (['--loss', 'asl', '--loss-class-weight', 'inv_freq'], 'timm weighs the classes of --loss bce, not of --loss asl'),
    (['--loss-weight-power', '0.5'], '--loss-weight-power 0.5: it is the exponent of --loss-class-weight inv_freq'),
    (['--poly-epsilon', '1'], '--poly-epsilon 1.0: it sets the Poly-1 loss; add --loss poly'),
    (['--class-stats', 'STATS3'], '3 class counts, but the model has 4 classes'),
    (['--class-stats', 'MISSING', '--task', 'balanced-softmax'], '--class-stats MISSING: '),
])
def test_loss_flags_that_cannot_apply_stop_with_one_line(image_folder, tmp_path, capsys, flags, message):
    (tmp_path / 'stats3.json').write_text(json.dumps(dict(pos_counts=[1, 2, 3], num_samples=6)))
    paths = {'STATS3': str(tmp_path / 'stats3.json'), 'MISSING': str(tmp_path / 'missing.json')}
    flags = [paths.get(f, f) for f in flags]
    message = message.replace('MISSING', paths['MISSING'])
    with pytest.raises(SystemExit) as exit_info:
        train.main(_args(image_folder, tmp_path, 'bad', *flags))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and message in err[-1] and ': error: ' in err[-1]
    assert not (tmp_path / 'bad').exists()
