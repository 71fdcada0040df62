"""Class-aware training samplers (``train.py --sampler``): draw a class, then an image of it.

With ``n_c`` training images of class c (classes without images are never drawn), the class probabilities are

* ``class-balanced``: ``p_c = 1 / C'`` over the C' classes that have images (Kang et al., ICLR 2020, cRT);
* ``square-root``: ``p_c ∝ n_c^½`` (Mahajan et al., 2018; Kang et al.);
* ``progressive``: ``p_c(t) = (1 − t/T) · n_c / N + (t/T) · 1 / C'`` at epoch t of T, from instance-balanced to
  class-balanced (Kang et al.);

and the image is uniform within its class. An epoch has ``num_samples`` draws (default: the dataset size).
The epoch's draws are a function of ``(seed, epoch)`` alone: every rank makes the same global sequence and takes
the disjoint share ``r, r + W, r + 2W, …`` (the sequence padded to a multiple of W by repeating its start), so a
resumed run draws what an unbroken one does and no position is drawn by two ranks.
"""
import math
from typing import Iterator, Optional, Sequence

import torch
from torch.utils.data import Sampler

__all__ = ['SAMPLERS', 'ClassAwareSampler', 'class_probabilities']

SAMPLERS = ('instance', 'class-balanced', 'square-root', 'progressive')


def class_probabilities(counts: Sequence[int], kind: str, epoch: int = 0, epochs: int = 1) -> torch.Tensor:
    """``[C]`` float64 class probabilities of ``kind`` for per-class image counts ``counts`` (see the module
    docstring); classes without images get 0."""
    n = torch.tensor([float(c) for c in counts], dtype=torch.float64)
    if n.numel() == 0 or bool((n < 0).any()) or float(n.sum()) == 0:
        raise ValueError(f'class counts must be non-negative with at least one image, got {list(counts)}')
    present = (n > 0).double()
    balanced = present / present.sum()
    if kind == 'instance':
        return n / n.sum()
    if kind == 'class-balanced':
        return balanced
    if kind == 'square-root':
        root = n.sqrt()
        return root / root.sum()
    if kind == 'progressive':
        t = min(max(epoch, 0), epochs) / max(epochs, 1)
        return (1 - t) * n / n.sum() + t * balanced
    raise ValueError(f'--sampler must be one of {", ".join(SAMPLERS)}, got {kind!r}')


class ClassAwareSampler(Sampler):
    """Indices into a dataset with per-sample ``targets``, drawn as the module docstring says.

    Args:
        targets: The class of every sample, in dataset order.
        kind: ``class-balanced``, ``square-root`` or ``progressive`` (``instance`` is a plain shuffle: timm's).
        num_classes: C; default the largest target + 1.
        num_samples: Draws per epoch over all ranks; default ``len(targets)``.
        epochs: T of ``progressive``.
        seed: With the epoch (``set_epoch``), the only source of randomness.
        num_replicas, rank: This process's share; default the torch.distributed world (1 process without it).
    """

    def __init__(self, targets: Sequence[int], kind: str = 'class-balanced', num_classes: Optional[int] = None,
                 num_samples: Optional[int] = None, epochs: int = 1, seed: int = 0,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None):
        targets = torch.as_tensor(list(targets), dtype=torch.int64)
        if targets.numel() == 0:
            raise ValueError('--sampler: the training dataset is empty')
        num_classes = num_classes or int(targets.max()) + 1
        if int(targets.min()) < 0 or int(targets.max()) >= num_classes:
            raise ValueError(f'--sampler: targets must lie in [0, {num_classes}), got [{int(targets.min())}, '
                             f'{int(targets.max())}]')
        if kind not in SAMPLERS or kind == 'instance':
            raise ValueError(f'--sampler: {kind!r} is not a class-aware sampler ({", ".join(SAMPLERS[1:])})')
        if num_replicas is None or rank is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            num_replicas = torch.distributed.get_world_size() if distributed else 1
            rank = torch.distributed.get_rank() if distributed else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f'rank {rank} outside [0, {num_replicas})')
        self.kind, self.epochs, self.seed = kind, int(epochs), int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.counts = torch.bincount(targets, minlength=num_classes).tolist()
        self.order = torch.argsort(targets, stable=True)  # sample indices grouped by class, in class order
        self.starts = torch.tensor([0] + self.counts[:-1]).cumsum(0)  # where each class's group begins
        self.total = int(num_samples or targets.numel())
        self.per_rank = math.ceil(self.total / self.num_replicas)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def probabilities(self) -> torch.Tensor:
        """This epoch's class probabilities ``[C]``."""
        return class_probabilities(self.counts, self.kind, self.epoch, self.epochs)

    def global_indices(self) -> torch.Tensor:
        """The epoch's draws for all ranks, ``[per_rank · num_replicas]`` (the tail repeats the start)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        classes = torch.multinomial(self.probabilities(), self.total, replacement=True, generator=generator)
        within = torch.rand(self.total, generator=generator, dtype=torch.float64)
        sizes = torch.tensor(self.counts, dtype=torch.float64)[classes]
        picks = (within * sizes).long().clamp_max(sizes.long() - 1)
        indices = self.order[self.starts[classes] + picks]
        padding = self.per_rank * self.num_replicas - self.total
        return torch.cat([indices, indices[:padding]]) if padding else indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_indices()[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_rank
