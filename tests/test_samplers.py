"""train.py --sampler: per-class draw frequencies on a long-tailed count vector, determinism per seed and epoch,
disjoint rank shares, resume mid-run, and the loader built with one."""
import math

import pytest
import torch

from timm_paco.data import ClassAwareSampler, class_probabilities, create_view_loader

COUNTS = [500, 150, 50, 15, 5, 0, 2]  # long-tailed, with an empty class
TARGETS = [c for c, n in enumerate(COUNTS) for _ in range(n)]


def _shuffled_targets():
    order = torch.randperm(len(TARGETS), generator=torch.Generator().manual_seed(3)).tolist()
    return [TARGETS[i] for i in order]


@pytest.mark.parametrize('kind,epoch', [('class-balanced', 0), ('square-root', 0), ('progressive', 0),
                                        ('progressive', 5), ('progressive', 10)])
def test_per_class_draw_frequencies_follow_the_rule(kind, epoch):
    targets = _shuffled_targets()
    draws = 60_000
    sampler = ClassAwareSampler(targets, kind, num_classes=7, num_samples=draws, epochs=10, seed=0)
    sampler.set_epoch(epoch)
    drawn = torch.bincount(torch.tensor([targets[i] for i in sampler]), minlength=7).double() / draws
    n = torch.tensor(COUNTS, dtype=torch.float64)
    present = (n > 0).double()
    expected = {  # written from the rules, not from class_probabilities
        'class-balanced': present / 6,
        'square-root': n.sqrt() / n.sqrt().sum(),
        'progressive': (1 - epoch / 10) * n / n.sum() + (epoch / 10) * present / 6,
    }[kind]
    torch.testing.assert_close(class_probabilities(COUNTS, kind, epoch, 10), expected)
    sigma = (expected * (1 - expected) / draws).sqrt()
    assert bool(((drawn - expected).abs() <= 5 * sigma + 1e-12).all()), (drawn, expected)
    assert drawn[5] == 0  # a class without images is never drawn


def test_images_are_uniform_within_their_class():
    targets = _shuffled_targets()
    sampler = ClassAwareSampler(targets, 'class-balanced', num_samples=30_000, seed=1)
    picks = torch.tensor(list(sampler))
    tail = [i for i, t in enumerate(targets) if t == 3]  # 15 images, each ~1/15 of the class's ~5000 draws
    hits = torch.bincount(picks, minlength=len(targets))[tail].double()
    assert hits.sum() > 4000 and bool((hits - hits.mean()).abs().max() < 6 * hits.mean().sqrt())


def test_draws_depend_on_seed_and_epoch_only():
    targets = _shuffled_targets()
    a = ClassAwareSampler(targets, 'square-root', seed=7)
    torch.manual_seed(123)  # the global RNG plays no part
    first = list(a)
    b = ClassAwareSampler(targets, 'square-root', seed=7)
    torch.manual_seed(999)
    assert list(b) == first and len(first) == len(targets)
    b.set_epoch(1)
    assert list(b) != first
    assert list(ClassAwareSampler(targets, 'square-root', seed=8)) != first


def test_ranks_take_disjoint_shares_of_one_global_draw():
    targets = _shuffled_targets()
    whole = ClassAwareSampler(targets, 'class-balanced', seed=2, num_replicas=1, rank=0)
    whole.set_epoch(4)
    ranks = [ClassAwareSampler(targets, 'class-balanced', seed=2, num_replicas=2, rank=r) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(4)
    shares = [list(r) for r in ranks]
    assert len(shares[0]) == len(shares[1]) == math.ceil(len(targets) / 2)
    # position p of the global sequence goes to rank p % 2: interleaving the shares gives it back
    interleaved = [i for pair in zip(*shares) for i in pair][:len(targets)]
    assert interleaved == list(whole)


def test_a_resumed_run_draws_what_an_unbroken_one_does():
    targets = _shuffled_targets()
    unbroken = ClassAwareSampler(targets, 'progressive', epochs=6, seed=5)
    epochs = []
    for epoch in range(6):
        unbroken.set_epoch(epoch)
        epochs.append(list(unbroken))
    resumed = ClassAwareSampler(targets, 'progressive', epochs=6, seed=5)  # a new process resuming at epoch 3
    for epoch in range(3, 6):
        resumed.set_epoch(epoch)
        assert list(resumed) == epochs[epoch]


def test_bad_sampler_arguments():
    with pytest.raises(ValueError, match="not a class-aware sampler"):
        ClassAwareSampler([0, 1], 'instance')
    with pytest.raises(ValueError, match=r'targets must lie in \[0, 2\)'):
        ClassAwareSampler([0, 2], 'class-balanced', num_classes=2)
    with pytest.raises(ValueError, match='--sampler must be one of'):
        class_probabilities([1, 2], 'balanced')


def test_view_loader_draws_with_the_sampler():
    class _Labels(torch.utils.data.Dataset):
        transform = None

        def __len__(self):
            return len(TARGETS)

        def __getitem__(self, index):
            return self.transform(torch.zeros(1, 2, 2)), TARGETS[index]

    sampler = ClassAwareSampler(TARGETS, 'class-balanced', seed=0)
    loader = create_view_loader(_Labels(), lambda x: x, batch_size=61, use_prefetcher=False, num_workers=0,
                                sampler=sampler)
    labels = torch.cat([target for _, target in loader])
    assert labels.numel() == len(TARGETS) - len(TARGETS) % 61
    assert torch.bincount(labels, minlength=7)[0] < 2 * labels.numel() / 6  # not the 69 % the head holds


def test_train_sampler_needs_known_classes():
    from argparse import Namespace

    from timm_paco.cli.train_data import _class_aware_sampler
    from timm_paco.cli.usage import UsageError

    class _Stream(torch.utils.data.Dataset):  # labels only by decoding
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return torch.zeros(1), 0

    args = Namespace(sampler='class-balanced', num_classes=2, epochs=3, seed=0)
    with pytest.raises(UsageError, match='^--sampler class-balanced needs the class of every training image'):
        _class_aware_sampler(args, _Stream())
    assert _class_aware_sampler(Namespace(**{**vars(args), 'sampler': 'instance'}), _Stream()) is None
    labelled = _Stream()
    labelled.targets = [0, 1, 1]
    assert isinstance(_class_aware_sampler(args, labelled), ClassAwareSampler)
