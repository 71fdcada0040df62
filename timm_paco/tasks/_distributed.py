"""Cross-rank gathers for the contrastive tasks.

A contrastive loss over a DDP batch must see the anchors and samples of every rank, or its value (and its
gradient) depends on the world size. ``gather_rows`` concatenates a tensor's rows from every rank, rank-major;
with ``grad=True`` the gradient flows back to each rank's own rows: the backward pass sums the incoming
gradients over ranks (all-reduce) and keeps the rows this rank contributed. When every rank computes the same
loss over the gathered rows, DDP's gradient average then equals the gradient of the 1-process loss over the
global batch. Without an initialised process group (or with one rank) both are the identity.

All ranks must pass tensors of the same shape (true for training loaders, which drop the last partial batch).
"""
import torch
import torch.distributed as dist

__all__ = ['world_size', 'gather_rows']


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.rows = x.shape[0]
        ctx.rank = dist.get_rank()
        return _all_gather(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = ctx.rank * ctx.rows
        return grad[start:start + ctx.rows]


@torch.compiler.disable
def gather_rows(x: torch.Tensor, grad: bool = False) -> torch.Tensor:
    """``x [n, ...]`` on each of W ranks -> ``[W·n, ...]`` (rank-major); differentiable if ``grad``."""
    if world_size() == 1:
        return x
    if grad and x.requires_grad:
        return _GatherWithGrad.apply(x)
    with torch.no_grad():
        return _all_gather(x.detach())
