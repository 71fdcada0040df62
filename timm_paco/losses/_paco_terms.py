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
from torch.autograd.function import once_differentiable

from ._checks import autocast_off

__all__ = ['paco_log_terms']

# bound_i = |f_i| max_j |k_j| / T >= |s_ij|: exp(s − bound) lies in [e^(−2·bound), 1], a normal float32 up to
# this bound (beyond it the exact row maximum is the shift)
_MAX_SIM_BOUND = 30.0
_LOG2E = 1.0 / math.log(2.0)
_LN2 = math.log(2.0)


def _sample_exp(features: torch.Tensor, queue: Optional[torch.Tensor], scale: float):
    """Returns (exp(s_ij − m_i) [A, A+N] with the self column 0, row shift m_i [A])."""
    num_anchors = features.shape[0]
    # the bound saves a pass over [A, A+N] on the CPU; elsewhere the exact row max costs less than the host
    # synchronisation that reading the bound would take
    bound = None
    if features.device.type == 'cpu':
        feature_norm = features.norm(dim=1)
        contrast_norm = feature_norm.amax()
        if queue is not None:
            contrast_norm = torch.maximum(contrast_norm, queue.norm(dim=1).amax())
        bound = feature_norm * contrast_norm * scale
    if bound is None or float(bound.max()) > _MAX_SIM_BOUND:
        contrast = features if queue is None else torch.cat([features, queue])
        out = torch.mm(features * scale, contrast.t())
        out[:, :num_anchors].diagonal().fill_(float('-inf'))
        row_max = out.amax(dim=1)
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        return out.sub_(row_max[:, None]).exp_(), row_max
    # CPU: exp2((s − bound)·log2 e) with log2 e and the shift folded into the GEMMs (exp2 is the cheaper kernel
    # there); the GEMMs write k·fᵀ as row blocks [features; queue] of one contiguous [A+N, A] buffer (faster
    # than f·kᵀ for few anchors, and no concatenated copy of the contrast set); the result is its transpose
    anchors_t = (features * (scale * _LOG2E)).t()
    shift = (bound * -_LOG2E)[None, :]
    out_t = features.new_empty(num_anchors + (0 if queue is None else queue.shape[0]), num_anchors)
    torch.addmm(shift, features, anchors_t, out=out_t[:num_anchors])
    if queue is not None:
        torch.addmm(shift, queue, anchors_t, out=out_t[num_anchors:])
    out = out_t.t()
    out[:, :num_anchors].diagonal().fill_(float('-inf'))
    return out.exp2_(), bound


class _PaCoLogTerms(torch.autograd.Function):

    @staticmethod
    def forward(ctx, logits, features, queue, log_prior, labels, gamma, temperature, smoothing):
        num_classes = logits.shape[1]
        off = smoothing / (num_classes - 1) if smoothing > 0 else 0.0
        # centre scores c = z + log p (z alone without a prior), in log2 units for exp2
        true_centre = logits.gather(1, labels[:, None]).squeeze(1)
        if log_prior is not None:
            true_centre = true_centre + log_prior[labels]
            centre = torch.add(log_prior * _LOG2E, logits, alpha=_LOG2E)
        else:
            centre = logits * _LOG2E
        centre_lp = true_centre * (1.0 - smoothing - off)
        if off:
            centre_lp += off * (logits.sum(dim=1) + (log_prior.sum() if log_prior is not None else 0.0))
        centre_shift = centre.amax(dim=1)
        centre = centre.sub_(centre_shift[:, None]).exp2_()
        centre_shift = centre_shift * _LN2
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
    @once_differentiable  # hand-written, in-place gradients: no double backward (second-order optimisers)
    @autocast_off
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
                # as contrast samples of the batch, and as anchors (a GEMM per block of the contrast set)
                grad_features = torch.addmm(g_batch.t() @ features, g_batch, features)
                if queue is not None:
                    grad_features.addmm_(grad_sims[:, num_anchors:], queue)
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
