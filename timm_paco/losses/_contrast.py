"""Sample-contrast terms (SupCon's log-denominator, per-label positive sums), without dense masks.

Anchors are the rows of ``features [A, D]``; the contrast set is ``features ∪ queue_features [N, D]``
minus the anchor itself (column i of anchor i). Similarities are ``f_i · k_j / T``.
"""
from typing import Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from ._checks import autocast_off

__all__ = ['sample_logsumexp', 'positive_stats']


def _scaled_sims(features: torch.Tensor, queue: Optional[torch.Tensor], scale: float) -> torch.Tensor:
    """[A, A+N]: scale · f_i·k_j with k = features ∪ queue, each anchor's own column at −inf."""
    num_anchors = features.shape[0]
    num_contrast = num_anchors + (0 if queue is None else queue.shape[0])
    out = features.new_empty(num_anchors, num_contrast)
    torch.mm(features, features.t(), out=out[:, :num_anchors])
    if queue is not None:
        torch.mm(features, queue.t(), out=out[:, num_anchors:])
    out.mul_(scale)
    out[:, :num_anchors].diagonal().fill_(float('-inf'))
    return out


class _SampleLogSumExp(torch.autograd.Function):
    """lse_i = log Σ_{j≠i} exp(scale · f_i·k_j). Saves only the inputs and lse; backward recomputes
    the similarities in place, so at most one [A, A+N] buffer is alive at a time."""

    @staticmethod
    def forward(ctx, features, queue, scale):
        sims = _scaled_sims(features, queue, scale)
        row_max = sims.amax(dim=1)
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        lse = sims.sub_(row_max[:, None]).exp_().sum(dim=1).log_().add_(row_max)
        ctx.scale = scale
        ctx.save_for_backward(features, queue, lse)
        return lse

    @staticmethod
    @once_differentiable  # hand-written, in-place gradients: no double backward (second-order optimisers)
    @autocast_off
    def backward(ctx, grad_lse):
        features, queue, lse = ctx.saved_tensors
        scale = ctx.scale
        num_anchors = features.shape[0]
        safe_lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        # softmax weights of each anchor row, times the incoming gradient, times d(sim)/d(dot) = scale
        weights = _scaled_sims(features, queue, scale)
        weights.sub_(safe_lse[:, None]).exp_().mul_((grad_lse * scale)[:, None])
        w_batch = weights[:, :num_anchors]
        grad_features = grad_queue = None
        if ctx.needs_input_grad[0]:
            grad_features = w_batch @ features + w_batch.t() @ features
            if queue is not None:
                grad_features += weights[:, num_anchors:] @ queue
        if queue is not None and ctx.needs_input_grad[1]:
            grad_queue = weights[:, num_anchors:].t() @ features
        return grad_features, grad_queue, None


def sample_logsumexp(features: torch.Tensor, queue: Optional[torch.Tensor], temperature: float) -> torch.Tensor:
    """[A] logsumexp over j ≠ i of f_i·k_j / T (``-inf`` for an anchor with no contrast sample)."""
    if queue is not None and queue.shape[0] == 0:
        queue = None
    return _SampleLogSumExp.apply(features, queue, 1.0 / temperature)


def positive_stats(
        features: torch.Tensor,
        labels: torch.Tensor,
        queue: Optional[torch.Tensor],
        queue_labels: Optional[torch.Tensor],
        num_classes: int,
        layout: Optional[str] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: (number of same-label samples j ≠ i, Σ of f_i·k_j over them), both [A].

    Contrast rows are summed per label, so the cost is O((A+N)·D) instead of an [A, A+N] mask. Accumulator
    layout (``layout=None`` picks by device): ``'present'`` (the CPU's) gives only labels present among the
    anchors a slot and drops the other queue rows first (no [C, D] buffer: cheaper for many classes);
    ``'classes'`` (elsewhere) gives every class a slot ([C, D] floats), which needs no host synchronisation
    (no unique or boolean indexing), so a GPU never waits on the host.
    """
    layout = layout or ('present' if features.device.type == 'cpu' else 'classes')
    has_queue = queue is not None and queue.shape[0] > 0
    if layout == 'classes':
        anchor_slot, num_slots = labels, num_classes
        sources = [(features, labels)] + ([(queue, queue_labels)] if has_queue else [])
    elif layout == 'present':
        present, anchor_slot = torch.unique(labels, return_inverse=True)
        num_slots = present.numel()
        sources = [(features, anchor_slot)]
        if has_queue:
            # only queue rows whose label some anchor has are positives of anyone: drop the rest up front
            slot_of_class = labels.new_full((num_classes,), -1)
            slot_of_class[present] = torch.arange(num_slots, device=labels.device)
            queue_slot = slot_of_class[queue_labels]
            keep = queue_slot >= 0
            sources.append((queue[keep], queue_slot[keep]))
    else:
        raise ValueError(f"layout: expected 'present', 'classes' or None, got {layout!r}")
    slot_sums = features.new_zeros(num_slots, features.shape[1])
    slot_counts = features.new_zeros(num_slots)
    for rows, slots in sources:
        slot_sums.index_add_(0, slots, rows)
        slot_counts.index_add_(0, slots, rows.new_ones(()).expand(rows.shape[0]))
    # the anchor itself is taken out of its own label's sums
    pos_dot = (features * (slot_sums[anchor_slot] - features)).sum(dim=1)
    return slot_counts[anchor_slot] - 1, pos_dot
