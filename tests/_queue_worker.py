"""Worker for the 2-process gloo test of `LabelledQueue` (spawned by tests/test_queue.py)."""
import datetime

import torch
import torch.distributed as dist

from timm_paco.queue import LabelledQueue

QUEUE_SIZE = 7
DIM = 4
# Rows each rank enqueues per step: unequal across ranks, with empty batches, a global batch > K and wrap-around.
ROWS_PER_STEP = {
    0: [3, 5, 0, 4, 0, 2],
    1: [2, 0, 6, 1, 0, 9],
}


def rank_batch(rank: int, step: int):
    """Deterministic (features [b, DIM], labels [b]) that `rank` enqueues at `step`."""
    generator = torch.Generator().manual_seed(1000 * rank + step)
    num_rows = ROWS_PER_STEP[rank][step]
    features = torch.randn(num_rows, DIM, generator=generator)
    labels = torch.randint(0, 100, (num_rows,), generator=generator)
    return features, labels


def run_rank(rank: int, world_size: int, init_method: str, out_dir: str):
    dist.init_process_group(
        'gloo', init_method=init_method, rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=60))
    try:
        queue = LabelledQueue(QUEUE_SIZE, DIM)
        snapshots = []
        for step in range(len(ROWS_PER_STEP[rank])):
            queue.enqueue(*rank_batch(rank, step))
            snapshots.append(queue.get())
        if rank == 1:  # broadcast (a resumed task's start) restores rank 0's queue and the host-side cache
            queue.reset()
        queue.broadcast(src=0)
        broadcast = queue.get()
        torch.save({'state_dict': queue.state_dict(), 'snapshots': snapshots, 'broadcast': broadcast},
                   f'{out_dir}/rank{rank}.pt')
    finally:
        dist.destroy_process_group()
