"""A ring buffer of labelled embeddings (the PaCo / MoCo feature queue).

``LabelledQueue(size, dim)`` holds up to ``size`` (K) rows of ``(embedding [dim], label)``. ``enqueue`` writes
rows in ring order: row ``i`` of the incoming rows goes to slot ``(ptr + i) % K`` and ``ptr`` advances by the
number of rows, so any batch size works, including ``b > K`` (only the last K rows survive, each in the slot
it would have reached by writing one row at a time) and ``b == 0``. Slots never written are masked by the
``valid`` buffer and never returned.

Under an initialised ``torch.distributed`` process group with world size > 1, ``enqueue`` first all-gathers
the rows of every rank (ranks may hold different batch sizes) in rank-major order (rank 0's rows, then
rank 1's, ...), so every rank holds the same queue, equal to a 1-process queue fed the concatenated batch.

All state is in registered buffers (``features [K, D]``, ``labels [K]`` int64, ``valid [K]`` bool,
``ptr`` scalar int64), so the queue follows ``.to(device)`` and is restored exactly by ``load_state_dict``.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

__all__ = ['LabelledQueue']


def _distributed_world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_gather_rows(features: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """All-gather rows of possibly different count per rank; returns them rank-major."""
    world_size = dist.get_world_size()
    count = torch.tensor([features.shape[0]], dtype=torch.int64, device=features.device)
    counts = [torch.zeros_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    max_count = max(sizes)
    if max_count == 0:
        return features, labels

    pad = max_count - features.shape[0]
    if pad:
        features = torch.cat([features, features.new_zeros(pad, features.shape[1])])
        labels = torch.cat([labels, labels.new_zeros(pad)])
    gathered_features = [torch.empty_like(features) for _ in range(world_size)]
    gathered_labels = [torch.empty_like(labels) for _ in range(world_size)]
    dist.all_gather(gathered_features, features.contiguous())
    dist.all_gather(gathered_labels, labels.contiguous())
    features = torch.cat([f[:n] for f, n in zip(gathered_features, sizes)])
    labels = torch.cat([y[:n] for y, n in zip(gathered_labels, sizes)])
    return features, labels


class LabelledQueue(nn.Module):
    """Ring buffer of ``size`` labelled ``dim``-dimensional embeddings.

    Args:
        size: number of slots K (> 0); any batch size may be enqueued.
        dim: embedding width D (> 0).
        dtype: floating dtype of the stored embeddings; ``enqueue`` casts to it (e.g. bf16 under autocast).

    ``len(queue)`` is the number of slots ever written (0 <= n <= K); as for any Python container an empty
    queue is falsy, so test ``queue is not None`` rather than ``if queue`` to check that one exists.
    """

    def __init__(self, size: int, dim: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f'size must be a positive int (number of queue slots), got {size!r}')
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f'dim must be a positive int (embedding width), got {dim!r}')
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f'dtype must be a floating torch.dtype, got {dtype!r}')
        self.register_buffer('features', torch.zeros(size, dim, dtype=dtype))
        self.register_buffer('labels', torch.zeros(size, dtype=torch.int64))
        self.register_buffer('valid', torch.zeros(size, dtype=torch.bool))
        self.register_buffer('ptr', torch.zeros((), dtype=torch.int64))
        # host copy of valid.all(); None = not known. Once the ring is full, get() needs no host
        # synchronisation (boolean indexing would make a GPU wait every step).
        self._full: Optional[bool] = False

    @property
    def size(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def _check_input(self, features: torch.Tensor, labels: torch.Tensor):
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[1] != self.dim:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f'features must be a tensor of shape [b, {self.dim}], got {shape}')
        if not features.is_floating_point():
            raise ValueError(f'features must be a floating tensor, got dtype {features.dtype}')
        if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != features.shape[0]:
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(
                f'labels must be a tensor of shape [{features.shape[0]}] (one per row of features), got {shape}')
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f'labels must be an integer tensor, got dtype {labels.dtype}')

    @torch.compiler.disable
    @torch.no_grad()
    def enqueue(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Write ``features [b, D]`` and ``labels [b]`` into the ring (detached, cast to the queue dtype).

        Under torch.distributed (world size > 1) every rank must call this at the same step; the rows of all
        ranks are gathered rank-major first. ``b`` may differ between ranks and may be 0 or larger than K.
        """
        self._check_input(features, labels)
        features = features.detach().to(device=self.features.device, dtype=self.features.dtype)
        labels = labels.detach().to(device=self.labels.device, dtype=torch.int64)
        if _distributed_world_size() > 1:
            features, labels = _all_gather_rows(features, labels)

        num_rows = features.shape[0]
        if num_rows == 0:
            return
        size = self.size
        # Rows that would be overwritten within this same call are dropped; the survivors land exactly where
        # writing one row at a time would have put them.
        keep = min(num_rows, size)
        offsets = torch.arange(num_rows - keep, num_rows, device=self.ptr.device)
        slots = (self.ptr + offsets) % size
        self.features[slots] = features[num_rows - keep:]
        self.labels[slots] = labels[num_rows - keep:]
        self.valid[slots] = True
        self.ptr.copy_((self.ptr + num_rows) % size)
        if not self._full:
            self._full = True if num_rows >= size else None

    @torch.compiler.disable
    @torch.no_grad()
    def get(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features [n, D], labels [n])`` of the n slots ever written, in slot order.

        Slot order is ascending slot index, not age: once the ring has wrapped, the oldest row sits at slot
        ``ptr``. The contrastive losses are order-invariant. The tensors are copies, so enqueueing before the
        backward pass of a loss that used them is safe.
        """
        if self._full is None:
            self._full = bool(self.valid.all())
        if self._full:
            return self.features.clone(), self.labels.clone()
        return self.features[self.valid], self.labels[self.valid]

    def reset(self) -> None:
        """Mark every slot unwritten and move the write pointer to slot 0."""
        with torch.no_grad():
            self.features.zero_()
            self.labels.zero_()
            self.valid.zero_()
            self.ptr.zero_()
        self._full = False

    def broadcast(self, src: int = 0) -> None:
        """Copy rank ``src``'s queue to every rank (a no-op without an initialised process group of world size
        > 1)."""
        if _distributed_world_size() > 1:
            for tensor in self.buffers():
                dist.broadcast(tensor, src=src)
            self._full = None

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._full = None

    def __len__(self) -> int:
        return int(self.valid.sum())

    def extra_repr(self) -> str:
        return f'size={self.size}, dim={self.dim}, dtype={self.features.dtype}'
