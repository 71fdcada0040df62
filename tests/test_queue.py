import io

import pytest
import torch
import torch.multiprocessing as mp

from timm_paco.queue import LabelledQueue

import _queue_worker


def ring_reference(size, batches):
    """Independent reference: write rows one at a time into a Python list ring; returns slot contents."""
    slots = [None] * size
    ptr = 0
    for features, labels in batches:
        for row, label in zip(features, labels):
            slots[ptr] = (row.clone(), int(label))
            ptr = (ptr + 1) % size
    return slots, ptr


def assert_matches_reference(queue, batches):
    slots, ptr = ring_reference(queue.size, batches)
    written = [s for s in slots if s is not None]
    features, labels = queue.get()
    assert len(queue) == len(written) == features.shape[0] == labels.shape[0]
    assert int(queue.ptr) == ptr
    assert queue.valid.tolist() == [s is not None for s in slots]
    if written:
        torch.testing.assert_close(features, torch.stack([s[0] for s in written]), rtol=0, atol=0)
        assert labels.tolist() == [s[1] for s in written]


def make_batch(num_rows, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_rows, dim, generator=generator), torch.randint(0, 1000, (num_rows,), generator=generator)


def test_fill_and_wrap_around_order():
    queue = LabelledQueue(5, 3)
    assert len(queue) == 0
    f, y = queue.get()
    assert f.shape == (0, 3) and y.shape == (0,)

    first = make_batch(3, 3, seed=0)
    queue.enqueue(*first)
    features, labels = queue.get()
    torch.testing.assert_close(features, first[0], rtol=0, atol=0)
    assert labels.tolist() == first[1].tolist()
    assert len(queue) == 3 and int(queue.ptr) == 3

    # 4 more rows on a ring of 5: two land in slots 3, 4, then the ring wraps to slots 0, 1.
    second = make_batch(4, 3, seed=1)
    queue.enqueue(*second)
    features, labels = queue.get()
    assert len(queue) == 5 and int(queue.ptr) == 2
    expected = torch.cat([second[0][2:4], first[0][2:3], second[0][0:2]])
    torch.testing.assert_close(features, expected, rtol=0, atol=0)
    assert labels.tolist() == second[1][2:4].tolist() + first[1][2:3].tolist() + second[1][0:2].tolist()


@pytest.mark.parametrize('size', [1, 5, 8])
def test_any_batch_size_matches_row_by_row_ring(size):
    # Batch sizes not dividing K, zero rows, b == K and b > K (several laps in one call).
    batch_sizes = [3, 0, 7, size, 2 * size + 3, 1, 0, 4]
    queue = LabelledQueue(size, 6)
    batches = []
    for step, b in enumerate(batch_sizes):
        batch = make_batch(b, 6, seed=10 + step)
        batches.append(batch)
        queue.enqueue(*batch)
        assert_matches_reference(queue, batches)


def test_batch_larger_than_queue_keeps_last_rows_in_order():
    queue = LabelledQueue(4, 2)
    features, labels = make_batch(10, 2, seed=3)
    queue.enqueue(features, labels)
    # Rows 0..9 written one at a time from slot 0 leave rows 8, 9 in slots 0, 1 and rows 6, 7 in slots 2, 3.
    got_features, got_labels = queue.get()
    torch.testing.assert_close(got_features, features[[8, 9, 6, 7]], rtol=0, atol=0)
    assert got_labels.tolist() == labels[[8, 9, 6, 7]].tolist()
    assert int(queue.ptr) == 10 % 4


def test_unfilled_slots_never_returned():
    queue = LabelledQueue(6, 2)
    # Poison the storage of unwritten slots: they must still not be returned.
    queue.features.fill_(float('nan'))
    queue.labels.fill_(-1)
    queue.enqueue(torch.ones(2, 2), torch.tensor([4, 5]))
    features, labels = queue.get()
    assert features.shape == (2, 2) and not torch.isnan(features).any()
    assert labels.tolist() == [4, 5]
    queue.enqueue(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    assert len(queue) == 2 and int(queue.ptr) == 2

    queue.reset()
    assert len(queue) == 0 and int(queue.ptr) == 0 and queue.get()[0].shape == (0, 2)


def test_state_dict_round_trip_gives_identical_behaviour():
    queue = LabelledQueue(7, 3)
    for step, b in enumerate([4, 5]):
        queue.enqueue(*make_batch(b, 3, seed=20 + step))
    state = queue.state_dict()
    assert set(state) == {'features', 'labels', 'valid', 'ptr'}
    assert state['features'].shape == (7, 3) and state['labels'].dtype == torch.int64
    assert state['valid'].dtype == torch.bool and state['ptr'].shape == () and int(state['ptr']) == 2

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = LabelledQueue(7, 3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))

    partial = LabelledQueue(7, 3)  # partially filled queues must round-trip their valid mask too
    partial.enqueue(*make_batch(2, 3, seed=30))
    partial_restored = LabelledQueue(7, 3)
    partial_restored.load_state_dict(partial.state_dict())

    for step, b in enumerate([3, 0, 9, 1]):
        batch = make_batch(b, 3, seed=40 + step)
        for q in (queue, restored, partial, partial_restored):
            q.enqueue(*batch)
        for a, b_ in ((queue, restored), (partial, partial_restored)):
            for key, value in a.state_dict().items():
                assert torch.equal(value, b_.state_dict()[key]), key
            fa, la = a.get()
            fb, lb = b_.get()
            assert torch.equal(fa, fb) and torch.equal(la, lb)


def test_full_ring_and_loaded_states_return_exactly_the_written_slots():
    # a full ring is returned without a mask; loading a partial state into a full queue (and the reverse)
    # or resetting must bring the mask back
    full = LabelledQueue(5, 2)
    full.enqueue(*make_batch(7, 2, seed=50))
    features, labels = full.get()
    assert features.shape == (5, 2) and torch.equal(features, full.features)
    assert features.data_ptr() != full.features.data_ptr()  # a copy, as for a partial ring

    partial = LabelledQueue(5, 2)
    partial.enqueue(*make_batch(3, 2, seed=51))
    full.load_state_dict(partial.state_dict())
    features, labels = full.get()
    assert torch.equal(features, partial.features[:3]) and torch.equal(labels, partial.labels[:3])

    refill = LabelledQueue(5, 2)
    refill.enqueue(*make_batch(2, 2, seed=52))
    assert refill.get()[0].shape == (2, 2)
    refill.load_state_dict(LabelledQueue(5, 2).state_dict() | {'valid': torch.ones(5, dtype=torch.bool)})
    assert refill.get()[0].shape == (5, 2)
    refill.reset()
    assert refill.get()[0].shape == (0, 2)
    refill.enqueue(*make_batch(4, 2, seed=53))
    refill.enqueue(*make_batch(1, 2, seed=54))  # fills the ring across two calls
    assert refill.get()[0].shape == (5, 2) and bool(refill.valid.all())


def test_enqueue_detaches_casts_and_get_returns_copies():
    queue = LabelledQueue(4, 3)
    features = torch.randn(2, 3, requires_grad=True)
    queue.enqueue(features.bfloat16(), torch.tensor([1, 2], dtype=torch.int32))
    assert queue.features.dtype == torch.float32 and not queue.features.requires_grad
    assert queue.labels.dtype == torch.int64
    got, labels = queue.get()
    torch.testing.assert_close(got, features.detach().bfloat16().float(), rtol=0, atol=0)
    assert labels.tolist() == [1, 2]

    # A loss that used get() may backpropagate after the next enqueue (MoCo/PaCo order).
    query = torch.randn(1, 3, requires_grad=True)
    logits = query @ got.T
    queue.enqueue(torch.randn(4, 3), torch.arange(4))
    logits.sum().backward()
    torch.testing.assert_close(query.grad, got.sum(0, keepdim=True))

    queue_64 = LabelledQueue(3, 2, dtype=torch.float64)
    queue_64.enqueue(torch.tensor([[0.1, 0.2]]), torch.tensor([0]))
    assert queue_64.get()[0].dtype == torch.float64
    assert 'size=3, dim=2, dtype=torch.float64' in repr(queue_64)


def test_bad_input_raises_value_error_naming_argument():
    for kwargs, name in [
        (dict(size=0, dim=3), 'size'),
        (dict(size=-2, dim=3), 'size'),
        (dict(size=4, dim=0), 'dim'),
        (dict(size=4, dim=3, dtype=torch.int64), 'dtype'),
    ]:
        with pytest.raises(ValueError, match=name):
            LabelledQueue(**kwargs)

    queue = LabelledQueue(4, 3)
    with pytest.raises(ValueError, match=r'features must be a tensor of shape \[b, 3\]'):
        queue.enqueue(torch.randn(2, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match='features'):
        queue.enqueue(torch.randn(3), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r'labels must be a tensor of shape \[2\]'):
        queue.enqueue(torch.randn(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match='labels'):
        queue.enqueue(torch.randn(2, 3), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match='labels must be an integer tensor'):
        queue.enqueue(torch.randn(2, 3), torch.zeros(2))
    assert len(queue) == 0 and int(queue.ptr) == 0  # nothing half-written


def test_two_gloo_ranks_hold_identical_queue_equal_to_single_process(tmp_path):
    world_size = 2
    mp.spawn(
        _queue_worker.run_rank,
        args=(world_size, f'file://{tmp_path}/pg_init', str(tmp_path)),
        nprocs=world_size,
        join=True,
    )
    results = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in range(world_size)]

    # Single process fed the same global batch each step: rank 0's rows, then rank 1's (rank-major).
    reference = LabelledQueue(_queue_worker.QUEUE_SIZE, _queue_worker.DIM)
    batches = []
    for step in range(len(_queue_worker.ROWS_PER_STEP[0])):
        parts = [_queue_worker.rank_batch(r, step) for r in range(world_size)]
        batch = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        batches.append(batch)
        reference.enqueue(*batch)
        expected_features, expected_labels = reference.get()
        for result in results:
            got_features, got_labels = result['snapshots'][step]
            assert torch.equal(got_features, expected_features) and torch.equal(got_labels, expected_labels)
    assert_matches_reference(reference, batches)
    assert len(reference) == _queue_worker.QUEUE_SIZE  # the run wrapped around

    for result in results:
        assert all(torch.equal(got, want) for got, want in zip(result['broadcast'], reference.get()))
        assert set(result['state_dict']) == set(reference.state_dict())
        for key, value in reference.state_dict().items():
            assert torch.equal(result['state_dict'][key], value), key
