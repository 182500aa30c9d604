"""All-gather with gradient: CSA takes its negatives from the global batch under ``torchrun``.

Rep-MTL's alone: the core synchronises gradients and averages per-task
gradients, but never gathers activations.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from mtlx import distributed

__all__ = ["all_gather_with_grad"]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0, keeping the autograd graph.

    Gradients flowing into other processes' slices are sent back to them
    (``torch.distributed.nn`` implements the backward as a reduce-scatter).
    """
    if not distributed.is_distributed():
        return tensor
    return _AllGather.apply(tensor)


class _AllGather(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums every process's gradient of this process's slice.

    Written here rather than taken from ``torch.distributed.nn``: with gloo its
    backward gave wrong gradients for non-contiguous incoming gradients (a
    transposed view of the gathered tensor), found by the Rep-MTL equality test.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(distributed.world_size())]
        dist.all_gather(parts, tensor)
        ctx.start, ctx.stop = distributed.rank() * tensor.shape[0], (distributed.rank() + 1) * tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop]
