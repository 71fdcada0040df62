"""Base of the losses that report named parts (``loss_parts``) on the common call contract."""
from typing import Optional

import torch
import torch.nn as nn

__all__ = ['PartsLoss']


class PartsLoss(nn.Module):
    """``forward`` is ``loss_parts(...)['loss']``; subclasses define ``loss_parts`` returning a dict of scalars."""

    def forward(
            self,
            logits: Optional[torch.Tensor],
            features: torch.Tensor,
            labels: torch.Tensor,
            queue_features: Optional[torch.Tensor] = None,
            queue_labels: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        return self.loss_parts(logits, features, labels, queue_features, queue_labels)['loss']
