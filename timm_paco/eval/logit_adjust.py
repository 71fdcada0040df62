"""Post-hoc logit adjustment (Menon et al., ICLR 2021) and the logit files validate.py writes.

A model is scored on ``logits − τ · log p`` [N, C], ``p`` the training class prior (counts / sum). τ = 1 makes a
model trained with plain cross-entropy a balanced-error classifier; a model trained with the prior inside its
loss (Balanced Softmax, PaCo / GPaCo: ``logits + τ_train · log p``) is already adjusted, and the post-hoc τ that
suits it best says how far its class bias is from balanced: < 0, too far towards the tail; > 0, not far enough.
``fit_class_bias`` is the general form of that correction: one free bias per class, ``logits + b`` [C], fitted by
cross-entropy on held-out images (bias-only recalibration); what it leaves is, to a close approximation,
not a class bias.

Logit files (validate.py ``--logits-file``) are safetensors with ``logits`` float32 [N, C], the model's outputs
before any ``--logit-adjust``, and ``targets`` int64 [N].
"""
from typing import Dict, List, Sequence, Tuple

import torch

from timm_paco.data.metrics import LongTailMeter
from timm_paco.losses._checks import check_class_counts, log_prior_from_counts

__all__ = ['check_logits_targets', 'logit_offset', 'class_hits', 'sweep_logit_adjust', 'select_tau', 'fit_class_bias',
           'save_logits', 'load_logits']


def check_logits_targets(logits: torch.Tensor, targets: torch.Tensor, where: str = ''):
    """Raise one ValueError (prefixed with ``where``) unless ``logits`` is [N, C] and ``targets`` [N] in [0, C)."""
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f'{where}logits must be [N, C] and targets [N], got {list(logits.shape)} and '
                         f'{list(targets.shape)}')
    if targets.numel() and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(f'{where}targets must lie in [0, {logits.shape[1]}), got range '
                         f'[{int(targets.min())}, {int(targets.max())}]')


def logit_offset(class_counts: Sequence[float], tau: float) -> torch.Tensor:
    """``−τ · log p`` [C] (float32), added to the logits; zero-count classes get ``log 1e-9`` as in the losses."""
    counts = check_class_counts(class_counts, len(class_counts))
    return (-float(tau) * log_prior_from_counts(counts)).float()


def class_hits(logits: torch.Tensor, targets: torch.Tensor, offset=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(correct [C], total [C]) top-1 counts per class of ``logits [N, C] + offset [C]`` (validate.py's meter)."""
    meter = LongTailMeter(logits.shape[1], topk=(1,))
    meter.update(logits.float() if offset is None else logits.float() + offset, targets)
    return meter.class_correct, meter.class_total


def sweep_logit_adjust(logits: torch.Tensor, targets: torch.Tensor, class_counts: Sequence[float],
                       taus: Sequence[float]) -> List[float]:
    """Top-1 accuracy (%) of ``logits − τ · log p`` for each τ in ``taus``."""
    neg_log_prior = logit_offset(class_counts, 1.0)
    out = []
    for tau in taus:
        correct, total = class_hits(logits, targets, tau * neg_log_prior)
        out.append(100. * correct.sum().item() / total.sum().item())
    return out


def select_tau(taus: Sequence[float], accuracies: Sequence[float]) -> float:
    """The τ of the best accuracy; among ties the one closest to 0 (no adjustment), then the smaller."""
    if not taus or len(taus) != len(accuracies):
        raise ValueError(f'need one accuracy per tau, got {len(taus)} taus and {len(accuracies)} accuracies')
    best = max(accuracies)
    return min((t for t, a in zip(taus, accuracies) if a == best), key=lambda t: (abs(t), t))


def fit_class_bias(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 200) -> torch.Tensor:
    """Per-class bias ``b`` [C] (float32, mean 0) minimising the mean cross-entropy of ``logits [N, C] + b`` on
    ``targets [N]`` (convex in ``b``; solved in float64 by L-BFGS). Every class needs at least one target image, or
    its bias would run off to minus infinity."""
    check_logits_targets(logits, targets)
    num_classes = logits.shape[1]
    present = torch.bincount(targets.long(), minlength=num_classes)
    if (present == 0).any():
        missing = [c for c in range(num_classes) if present[c] == 0]
        raise ValueError(f'fit_class_bias needs images of every class in [0, {num_classes}); '
                         f'none of class(es) {missing[:10]}')
    logits, targets = logits.detach().double(), targets.long()
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([bias], lr=1, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
                                  line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits + bias, targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    bias = bias.detach()
    return (bias - bias.mean()).float()


def save_logits(path: str, logits: torch.Tensor, targets: torch.Tensor):
    """Write ``logits [N, C]`` (as float32) and ``targets [N]`` (as int64) to the safetensors file ``path``."""
    from safetensors.torch import save_file
    check_logits_targets(logits, targets)
    save_file({'logits': logits.detach().float().cpu().contiguous(),
               'targets': targets.detach().long().cpu().contiguous()}, path)


def load_logits(path: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, C] float32, targets [N] int64) from a file written by ``save_logits``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        tensors: Dict[str, torch.Tensor] = load_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'logits file {path} not found')
    except SafetensorError as e:
        raise ValueError(f'logits file {path} is not a safetensors file: {e}') from None
    logits, targets = tensors.get('logits'), tensors.get('targets')
    if logits is None or targets is None or logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f'logits file {path} must hold "logits" [N, C] and "targets" [N], got '
                         + ', '.join(f'{k} {list(v.shape)}' for k, v in tensors.items()))
    check_logits_targets(logits, targets, f'logits file {path}: ')
    return logits.float(), targets.long()
