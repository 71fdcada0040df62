"""Non-finite (NaN / inf) values in weights, gradients and checkpoints: found, named and refused.

A diverged run must not be saved, scored or published: train.py stops at the first non-finite loss or
gradient (``--max-nonfinite-steps`` skips a bounded number), never writes a checkpoint whose weights are not
finite, and validate.py, ``--initial-checkpoint`` and the Hub export refuse such a checkpoint.
"""
from collections import defaultdict
from typing import Any, Iterable, List, Mapping

import torch

__all__ = ['NonFiniteError', 'non_finite_names', 'check_finite_state', 'grads_finite']


class NonFiniteError(ValueError):
    """A loss, gradient or weight that is NaN or infinite; the message names where."""


def _floating(value: Any) -> bool:
    return torch.is_tensor(value) and (value.is_floating_point() or value.is_complex())


def non_finite_names(state: Mapping[str, Any], prefix: str = '') -> List[str]:
    """Names of the floating-point tensors in ``state`` (nested dicts walked, ``a.b`` names) holding a NaN or
    infinity."""
    names = []
    for key, value in state.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            names += non_finite_names(value, prefix=f'{name}.')
        elif _floating(value) and value.numel() and not bool(torch.isfinite(value).all()):
            names.append(name)
    return names


def check_finite_state(state: Mapping[str, Any], source: str) -> None:
    """Raise NonFiniteError naming ``source`` and the first tensors of ``state`` that are not finite."""
    bad = non_finite_names(state)
    if bad:
        shown = ', '.join(bad[:3]) + (f' and {len(bad) - 3} more' if len(bad) > 3 else '')
        raise NonFiniteError(f'{source} has non-finite weights (NaN or inf) in {shown}: a diverged run; use a '
                             f'checkpoint from before the divergence')


def grads_finite(parameters: Iterable[torch.nn.Parameter]) -> bool:
    """Whether every gradient is finite: the grad scaler's fused multi-tensor check (scale 1, so the gradients
    stay as they are) per device and dtype, then one device sync."""
    groups = defaultdict(list)
    for p in parameters:
        if p.grad is not None:
            groups[(p.grad.device, p.grad.dtype)].append(p.grad.detach())
    found = []
    for (device, _), grads in groups.items():
        flag = torch.zeros(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, flag, torch.ones(1, device=device))
        found.append(flag.cpu() if len(groups) > 1 else flag)
    return not found or not bool(torch.stack(found).sum())
