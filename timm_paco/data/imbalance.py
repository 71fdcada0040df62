"""Exponential long-tail profile on any labelled dataset (CIFAR-100-LT style).

Class ``c`` of ``C`` keeps ``n_c = int(n_max · factor^(c / (C − 1)))`` samples, ``n_max`` being the largest class
of the base dataset, so ``--imb-factor 0.01`` gives the usual imbalance ratio 100. Samples of each class are
drawn, class by class in label order, from one ``numpy.random.RandomState(seed)`` shuffle per class (the draw
the CIFAR-LT papers use), so a seed fixes the subset.
"""
from typing import List, Optional

import numpy as np
import torch.utils.data

from .class_counts import count_classes, dataset_targets

__all__ = ['ImbalancedDataset', 'long_tail_counts', 'check_imb_factor']


def check_imb_factor(imb_factor: float) -> float:
    if not (isinstance(imb_factor, (int, float)) and 0. < imb_factor <= 1.):
        raise ValueError(f'--imb-factor: expected a ratio n_min / n_max in (0, 1], got {imb_factor!r}')
    return float(imb_factor)


def long_tail_counts(n_max: int, num_classes: int, imb_factor: float) -> List[int]:
    """``[int(n_max · imb_factor^(c / (C − 1))) for c in range(C)]``."""
    imb_factor = check_imb_factor(imb_factor)
    if num_classes < 2:
        raise ValueError(f'num_classes: an imbalance profile needs >= 2 classes, got {num_classes}')
    return [int(n_max * imb_factor ** (c / (num_classes - 1))) for c in range(num_classes)]


class ImbalancedDataset(torch.utils.data.Subset):
    """A long-tailed subset of ``dataset``.

    Attributes: ``indices`` into the base, ``targets`` ``[N]``, ``class_counts`` ``[C]`` (what was kept; a class
    with fewer samples than the profile asks for keeps all of them). ``transform`` reads / assigns the base
    dataset's transform, so timm-style code that sets ``dataset.transform`` keeps working.
    """

    def __init__(
            self,
            dataset: torch.utils.data.Dataset,
            imb_factor: float,
            seed: int = 0,
            num_classes: Optional[int] = None,
    ):
        imb_factor = check_imb_factor(imb_factor)
        targets = np.asarray(dataset_targets(dataset), dtype=np.int64)
        base_counts = count_classes(dataset, num_classes)
        num_classes = len(base_counts)
        profile = long_tail_counts(max(base_counts), num_classes, imb_factor)

        rng = np.random.RandomState(seed)
        indices, kept = [], []
        for c, n_c in enumerate(profile):
            idx = np.flatnonzero(targets == c)
            rng.shuffle(idx)
            idx = idx[:n_c]
            indices.extend(idx.tolist())
            kept.append(len(idx))
        super().__init__(dataset, indices)
        self.targets = targets[indices].tolist()
        self.class_counts = kept
        self.num_classes = num_classes
        self.imb_factor = imb_factor
        self.seed = seed

    @property
    def transform(self):
        return self.dataset.transform

    @transform.setter
    def transform(self, transform):
        self.dataset.transform = transform
