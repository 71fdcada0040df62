"""Argument validation and float32 handling shared by the losses in ``timm_paco.losses``.

Every check raises one ``ValueError`` naming the argument and the expected shape or range.
"""
import functools
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

__all__ = ['check_num_classes', 'check_real', 'check_paco_weights', 'check_temperatures', 'check_class_counts',
           'log_prior_from_counts', 'check_loss_inputs', 'compute_dtype', 'upcast_inputs', 'autocast_off']


def check_num_classes(num_classes: int, min_classes: int = 1) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < min_classes:
        raise ValueError(f'num_classes must be an int >= {min_classes}, got {num_classes!r}')
    return num_classes


def check_real(name: str, value) -> float:
    """``value`` as a float if it is a finite real number (not a bool, str or None); the callers check ranges."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f'{name} must be a finite real number, got {value!r}')
    return float(value)


def check_paco_weights(alpha, beta, gamma) -> Tuple[float, float, float]:
    """PaCo's ``(alpha, beta, gamma)`` as floats >= 0; alpha and beta (the positives' weights) not both 0."""
    for name, value in (('alpha', alpha), ('beta', beta), ('gamma', gamma)):
        if check_real(name, value) < 0:
            raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
    if alpha == 0 and beta == 0:
        raise ValueError('alpha and beta cannot both be 0 (no positive would carry weight)')
    return float(alpha), float(beta), float(gamma)


def check_temperatures(temperature, base_temperature) -> Tuple[float, float]:
    """``(temperature, base_temperature)`` as floats > 0; ``base_temperature=None`` means ``temperature``."""
    temperature = check_real('temperature', temperature)
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature!r}')
    if base_temperature is None:
        return temperature, temperature
    if check_real('base_temperature', base_temperature) <= 0:
        raise ValueError(f'base_temperature must be > 0 or None, got {base_temperature!r}')
    return temperature, float(base_temperature)


def check_class_counts(class_counts: Union[Sequence[float], torch.Tensor], num_classes: int) -> torch.Tensor:
    """Validate per-class training-sample counts; returns them as a float64 tensor [num_classes].

    Zero counts are allowed (the prior is clamped by the callers); negative or non-finite entries,
    a wrong length and an all-zero vector are not.
    """
    try:
        counts = torch.as_tensor(class_counts).detach().to(device='cpu', dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f'class_counts must be a list or tensor of numbers [num_classes] = [{num_classes}], '
                         f'got {class_counts!r:.80}') from e
    if counts.ndim != 1 or counts.numel() != num_classes:
        raise ValueError(
            f'class_counts must have shape [num_classes] = [{num_classes}], got {list(counts.shape)}')
    if not torch.isfinite(counts).all() or (counts < 0).any():
        raise ValueError('class_counts must be finite and non-negative (a zero-sample class is allowed)')
    if counts.sum() <= 0:
        raise ValueError('class_counts must contain at least one positive count')
    return counts


def log_prior_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """log p_c with p = counts / sum(counts); empty classes get log(1e-9) instead of -inf (as the seeds do)."""
    return torch.log(counts / counts.sum() + 1e-9)


def _check_labels(name: str, labels: torch.Tensor, rows: int, rows_name: str):
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f'{name} must be a tensor of shape [{rows_name}] = [{rows}], got {type(labels).__name__}')
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise ValueError(f'{name} must have shape [{rows_name}] = [{rows}], got {list(labels.shape)}')
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f'{name} must be an integer tensor, got dtype {labels.dtype}')


def _check_2d(name: str, x, shape_str: str):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f'{name} must be a floating-point tensor of shape {shape_str}')
    if x.ndim != 2:
        raise ValueError(f'{name} must be 2-D with shape {shape_str}, got {list(x.shape)}')


def check_loss_inputs(
        num_classes: int,
        logits: Optional[torch.Tensor],
        features: Optional[torch.Tensor],
        labels: torch.Tensor,
        queue_features: Optional[torch.Tensor] = None,
        queue_labels: Optional[torch.Tensor] = None,
        need_logits: bool = True,
        need_features: bool = True,
) -> int:
    """Validate the common loss call ``(logits [A, C], features [A, D], labels [A], queue [N, D], [N])``.

    Returns A, the number of anchors. Inputs a loss does not use (``need_*=False``) may be None;
    when given they are still checked for consistent row counts.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        shape = list(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f'labels must be a 1-D integer tensor of shape [A], got {shape}')
    rows = labels.shape[0]
    if rows == 0:
        raise ValueError('labels must hold at least one anchor (shape [A] with A >= 1), got [0]')
    if logits is None:
        if need_logits:
            raise ValueError(f'logits must be a tensor of shape [A, num_classes] = [{rows}, {num_classes}], got None')
    else:
        _check_2d('logits', logits, f'[A, num_classes] = [{rows}, {num_classes}]')
        if num_classes is not None and logits.shape[1] != num_classes:
            raise ValueError(
                f'logits must have shape [A, num_classes] = [{rows}, {num_classes}], got {list(logits.shape)}')
        if logits.shape[0] != rows:
            raise ValueError(
                f'logits rows must match labels: expected [A, num_classes] = [{rows}, {num_classes}], '
                f'got {list(logits.shape)}')
    _check_labels('labels', labels, rows, 'A')

    if features is None:
        if need_features:
            raise ValueError(f'features must be a tensor of shape [A, D] with A = {rows}, got None')
        if queue_features is not None or queue_labels is not None:
            raise ValueError('queue_features / queue_labels need features [A, D]; got features=None')
        _check_label_range(num_classes, labels, None)
        return rows
    _check_2d('features', features, f'[A, D] with A = {rows}')
    if features.shape[0] != rows:
        raise ValueError(
            f'features rows must match labels: expected [A, D] with A = {rows}, got {list(features.shape)}')
    dim = features.shape[1]
    if (queue_features is None) != (queue_labels is None):
        raise ValueError('queue_features [N, D] and queue_labels [N] must be given together (or both None)')
    if queue_features is not None:
        _check_2d('queue_features', queue_features, f'[N, D] with D = {dim}')
        if queue_features.shape[1] != dim:
            raise ValueError(
                f'queue_features must have shape [N, D] with D = {dim} (as features), got {list(queue_features.shape)}')
        _check_labels('queue_labels', queue_labels, queue_features.shape[0], 'N')
    _check_label_range(num_classes, labels, queue_labels)
    return rows


def _check_label_range(num_classes: Optional[int], labels: torch.Tensor, queue_labels: Optional[torch.Tensor]):
    """Labels in [0, num_classes) (``num_classes`` None: >= 0): one host synchronisation for both tensors (a GPU
    waits once per call)."""
    named = [('labels', labels)] + ([('queue_labels', queue_labels)] if queue_labels is not None else [])
    high = float('inf') if num_classes is None else num_classes
    flags = [((t < 0) | (t >= high)).any() for _, t in named if t.numel()]
    if not flags or not bool(torch.stack(flags).any()):
        return
    for name, t in named:
        if t.numel() and (t.min() < 0 or t.max() >= high):
            bound = '[0, num_classes) = [0, {})'.format(num_classes) if num_classes is not None else '[0, inf)'
            raise ValueError(f'{name} must lie in {bound}, got values in [{int(t.min())}, {int(t.max())}]')


def compute_dtype(*tensors: Optional[torch.Tensor]) -> torch.dtype:
    """float64 if any input is float64, else float32 (half / bfloat16 inputs are upcast)."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def upcast_inputs(
        logits: Optional[torch.Tensor],
        features: Optional[torch.Tensor],
        labels: torch.Tensor,
        queue_features: Optional[torch.Tensor] = None,
        queue_labels: Optional[torch.Tensor] = None,
):
    """The loss call's tensors in ``compute_dtype`` of the float inputs given, labels as int64; None stays None."""
    dtype = compute_dtype(logits, features, queue_features)
    floats = [None if t is None else t.to(dtype) for t in (logits, features, queue_features)]
    return floats[0], floats[1], labels.long(), floats[2], None if queue_labels is None else queue_labels.long()


def autocast_off(backward):
    """Decorates a hand-written ``autograd.Function.backward``: it runs with autocast off on the gradients'
    device, as its forward did. A caller may run backward inside an autocast region, which would otherwise give
    its matrix products bf16 / fp16 operands next to the float32 saved tensors."""
    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        with torch.autocast(device_type=grads[0].device.type, enabled=False):
            return backward(ctx, *grads)
    return wrapper


_NORM_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 2e-2}


def check_normalised(**named: torch.Tensor) -> None:
    """Every row ``[..., D]`` of each named tensor must be L2-normalised (the similarities are cosines over a
    temperature): one host synchronisation for all of them; a ValueError names the first one that is not."""
    norms = {name: x.detach().float().reshape(-1, x.shape[-1]).norm(dim=1) for name, x in named.items()
             if x.numel()}
    bad = [((n - 1).abs() > _NORM_TOLERANCE.get(named[name].dtype, 1e-3)).any() for name, n in norms.items()]
    if not bad or not bool(torch.stack(bad).any()):
        return
    for (name, n), flag in zip(norms.items(), bad):
        if flag:
            raise ValueError(f'{name} must be L2-normalised rows (norm 1): got norms in [{float(n.min()):.4g}, '
                             f'{float(n.max()):.4g}]; normalise them (torch.nn.functional.normalize)')
