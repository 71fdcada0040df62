"""Confusion counts of top-1 predictions, and the class pairs a model confuses most.

``confusion_counts(logits [N, C], targets [N])`` is ``M [C, C]`` int64 with ``M[t, p]`` the number of images of
class ``t`` whose top-1 prediction is ``p`` (rows: true class, columns: prediction; row sums are the images per
class, the diagonal the correct ones). A dense C x C matrix: meant for small label sets such as the long-tail
benchmarks' 10 classes, not for ImageNet-scale C.
"""
from typing import List, Optional, Sequence, Tuple

import torch

from .logit_adjust import check_logits_targets

__all__ = ['confusion_counts', 'confusion_rates', 'top_confusions']


def confusion_counts(logits: torch.Tensor, targets: torch.Tensor, offset: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
    """``[C, C]`` int64 counts of (true class, top-1 prediction) of ``logits [N, C] + offset [C]``."""
    check_logits_targets(logits, targets)
    num_classes = logits.shape[1]
    targets = targets.long()
    scores = logits.float() if offset is None else logits.float() + offset
    pred = scores.argmax(dim=1)
    return torch.bincount(targets * num_classes + pred, minlength=num_classes * num_classes).view(
        num_classes, num_classes)


def confusion_rates(counts: torch.Tensor) -> torch.Tensor:
    """Row-normalised ``counts [C, C]`` in percent: ``[t, p]`` is the share of class ``t``'s images predicted as
    ``p``; a class without images gets a row of NaN."""
    counts = counts.double()
    return 100. * counts / counts.sum(dim=1, keepdim=True)


def top_confusions(rates: Sequence[torch.Tensor], k: int) -> List[Tuple[int, int]]:
    """The ``k`` off-diagonal ``(true, predicted)`` pairs with the largest rate in any of ``rates`` ([C, C] each),
    largest first (ties: lower true class, then lower predicted class)."""
    if not rates:
        raise ValueError('top_confusions needs at least one [C, C] rate matrix')
    worst = torch.stack([r.double() for r in rates]).nan_to_num(nan=-1.).amax(dim=0)
    num_classes = worst.shape[0]
    pairs = [(t, p) for t in range(num_classes) for p in range(num_classes) if t != p]
    return sorted(pairs, key=lambda tp: (-worst[tp].item(), tp))[:k]
