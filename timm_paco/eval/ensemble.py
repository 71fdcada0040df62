"""Ensemble of classifiers by logit averaging."""
from typing import Sequence

import torch
import torch.nn as nn


class EnsembleModel(nn.Module):
    """Mean of the members' logits: ``forward(x [N, ...])`` -> ``[N, C]`` float32.

    Logits (pre-softmax scores) are averaged, not probabilities, so the ensemble's top-1 is the argmax of the
    summed logits. Members must share the input pre-processing and the number of classes.
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if len(models) < 1:
            raise ValueError('EnsembleModel needs at least one model')
        classes = {getattr(m, 'num_classes', None) for m in models}
        if len(classes) > 1:
            raise ValueError(f'ensemble members disagree on num_classes: {sorted(map(str, classes))}')
        self.members = nn.ModuleList(models)
        self.num_classes = models[0].num_classes
        self.pretrained_cfg = getattr(models[0], 'pretrained_cfg', {})
        self.default_cfg = self.pretrained_cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for m in self.members:
            logits = m(x).float()
            out = logits if out is None else out + logits
        return out / len(self.members)
