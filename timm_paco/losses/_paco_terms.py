"""The PaCo log-denominator and centre log-likelihood as one autograd Function.

Per anchor i, with centre scores ``c_ic = z_ic + log p_c`` and sample scores ``s_ij = f_i·k_j / T``
(``k`` = features ∪ queue, ``j ≠ i``):

    lse_i        = log(Σ_c exp c_ic + γ Σ_{j≠i} exp s_ij)
    centre_lp_i  = (1 − s) c_iy + s/(C−1) Σ_{c≠y} c_ic − lse_i      (= Σ_c w_ic log p_ic / beta)

Forward keeps exp(c − m) [A, C] and exp(s − m') [A, A+N] (row shifts m, m'); backward scales them in
place into the logits gradient and the similarity gradient. So no [A, C+A+N] buffer or mask is built,
and nothing [A, ·]-sized is allocated in backward. Because of that in-place reuse, backward runs once
per graph (a second backward through a retained graph raises autograd's in-place RuntimeError).
"""
import math
from typing import Optional, Tuple

import torch

__all__ = ['paco_log_terms']

# exp(s − bound) with bound_i = |f_i| max_j |k_j| / T ≥ s_ij stays within float32 range (≥ e^-2·bound)
_MAX_SIM_BOUND = 30.0


def _contrast_set(features: torch.Tensor, queue: Optional[torch.Tensor]) -> torch.Tensor:
    """k = features ∪ queue, [A+N, D]."""
    return features if queue is None else torch.cat([features, queue])


def _sample_exp(features: torch.Tensor, queue: Optional[torch.Tensor], scale: float):
    """Returns (exp(s_ij − m_i) [A, A+N] with the self column 0, row shift m_i [A])."""
    num_anchors = features.shape[0]
    contrast_norm = features.norm(dim=1).amax()
    if queue is not None:
        contrast_norm = torch.maximum(contrast_norm, queue.norm(dim=1).amax())
    bound = features.norm(dim=1) * contrast_norm * scale
    # the bound saves a pass over [A, A+N] on the CPU; elsewhere the exact row max costs less than the host
    # synchronisation that reading the bound would take
    exact_max = features.device.type != 'cpu' or float(bound.max()) > _MAX_SIM_BOUND
    shift = torch.zeros_like(bound) if exact_max else -bound
    # out = scale · f_i·k_j − m_i in one GEMM into a contiguous buffer (m = bound; exact row max below if too
    # large); two GEMMs into column blocks of one buffer are slower and cost a copy on CPU
    out = torch.addmm(shift[:, None], features, _contrast_set(features, queue).t(), alpha=scale)
    out[:, :num_anchors].diagonal().fill_(float('-inf'))
    if exact_max:
        row_max = out.amax(dim=1)
        bound = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        out.sub_(bound[:, None])
    return out.exp_(), bound


class _PaCoLogTerms(torch.autograd.Function):

    @staticmethod
    def forward(ctx, logits, features, queue, log_prior, labels, gamma, temperature, smoothing):
        num_classes = logits.shape[1]
        off = smoothing / (num_classes - 1) if smoothing > 0 else 0.0
        centre = logits + log_prior if log_prior is not None else logits.clone()
        centre_lp = centre.gather(1, labels[:, None]).squeeze(1) * (1.0 - smoothing - off)
        if off:
            centre_lp += off * centre.sum(dim=1)
        centre_shift = centre.amax(dim=1)
        centre = centre.sub_(centre_shift[:, None]).exp_()
        lse = centre.sum(dim=1).log_().add_(centre_shift)

        samples = sample_shift = None
        if gamma > 0:
            samples, sample_shift = _sample_exp(features, queue, 1.0 / temperature)
            sample_shift = sample_shift + math.log(gamma)
            lse = torch.logaddexp(lse, samples.sum(dim=1).log_().add_(sample_shift))
        centre_lp -= lse
        ctx.smoothing, ctx.off, ctx.temperature = smoothing, off, temperature
        ctx.save_for_backward(features, queue, labels, lse, centre, centre_shift, samples, sample_shift)
        return centre_lp, lse

    @staticmethod
    def backward(ctx, grad_centre_lp, grad_lse):
        features, queue, labels, lse, centre, centre_shift, samples, sample_shift = ctx.saved_tensors
        num_anchors = features.shape[0]
        grad_den = grad_lse - grad_centre_lp  # d/d lse_i of both outputs
        grad_logits = grad_features = grad_queue = None
        if ctx.needs_input_grad[0]:
            # softmax share of each centre in the full denominator, times d/d lse
            grad_logits = centre.mul_((torch.exp(centre_shift - lse) * grad_den)[:, None])
            if ctx.off:
                grad_logits.add_((grad_centre_lp * ctx.off)[:, None])
            grad_logits.scatter_add_(1, labels[:, None], (grad_centre_lp * (1.0 - ctx.smoothing - ctx.off))[:, None])
        need_f, need_q = ctx.needs_input_grad[1], queue is not None and ctx.needs_input_grad[2]
        if samples is not None and (need_f or need_q):
            # γ exp(s_ij) / denominator_i, times d/d lse, times d s / d(f·k) = 1 / T
            grad_sims = samples.mul_((torch.exp(sample_shift - lse) * grad_den / ctx.temperature)[:, None])
            g_batch = grad_sims[:, :num_anchors]
            if need_f:
                # as anchors (one GEMM over the whole contrast set) and as contrast samples of the batch
                grad_features = torch.addmm(g_batch.t() @ features, grad_sims, _contrast_set(features, queue))
            if need_q:
                grad_queue = grad_sims[:, num_anchors:].t() @ features
        return grad_logits, grad_features, grad_queue, None, None, None, None, None


def paco_log_terms(
        logits: torch.Tensor,
        features: torch.Tensor,
        queue: Optional[torch.Tensor],
        log_prior: Optional[torch.Tensor],
        labels: torch.Tensor,
        gamma: float,
        temperature: float,
        smoothing: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (centre_lp [A], lse [A]) as defined in the module docstring."""
    if queue is not None and queue.shape[0] == 0:
        queue = None
    return _PaCoLogTerms.apply(logits, features, queue, log_prior, labels, gamma, temperature, smoothing)
