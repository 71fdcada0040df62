"""Peak memory of a callable on any device, from torch.profiler's allocation events."""
from typing import Callable

from torch.profiler import ProfilerActivity, profile

__all__ = ['peak_allocated_bytes']


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Run ``fn()`` once and return the peak of (bytes allocated − bytes freed) while it ran.

    Tensors alive before the call (inputs) are not counted; the count is the running sum of the profiler's
    ``[memory]`` events in time order, so it works on CPU where no allocator statistics exist.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'),
                    key=lambda e: e.start_ns())
    level = peak = 0
    for e in events:
        level += e.nbytes()
        peak = max(peak, level)
    return peak
