"""Peak memory of a callable on any device."""
from typing import Callable, Optional, Union

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ['peak_allocated_bytes']


def peak_allocated_bytes(fn: Callable[[], object], device: Optional[Union[str, torch.device]] = None) -> int:
    """Run ``fn()`` once and return the peak of (bytes allocated − bytes freed) while it ran.

    Tensors alive before the call (inputs) are not counted. On CUDA (``device``) the count comes from the
    caching allocator's peak statistic; elsewhere it is the running sum of torch.profiler's ``[memory]``
    events in time order, since the CPU keeps no allocator statistics.
    """
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'),
                    key=lambda e: e.start_ns())
    level = peak = 0
    for e in events:
        level += e.nbytes()
        peak = max(peak, level)
    return peak
