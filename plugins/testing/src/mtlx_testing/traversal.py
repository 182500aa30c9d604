"""Count how often a step backpropagates through each task head (first and second order).

Per-task gradients are only as cheap as the exact maths when each head is
traversed once per gradient it contributes to. :class:`HeadTraversals` wraps
each head's input in an identity whose backward (and double backward) is
counted, so a test can assert the count instead of timing the step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["HeadTraversals"]


class _Counted(torch.autograd.Function):
    """Identity whose backward counts a traversal of ``order`` ("first"); the backward is itself this identity
    at order "second", so differentiating a gradient graph (``create_graph``) is counted too."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, counts: Counter, key: str, order: str) -> torch.Tensor:
        ctx.counts, ctx.key, ctx.order = counts, key, order
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ctx.counts[(ctx.order, ctx.key)] += 1
        if ctx.order == "second":
            return grad, None, None, None
        if torch._C._functorch.is_legacy_batchedtensor(grad):  # inside is_grads_batched: one pass, several rows
            ctx.counts[("batched", ctx.key)] += 1
        return _Counted.apply(grad, ctx.counts, ctx.key, "second"), None, None, None


class HeadTraversals:
    """Counts backward passes through each head of ``heads`` (``{task: module}``) while :meth:`counting`."""

    def __init__(self, heads: Mapping[str, nn.Module]):
        self.heads = dict(heads)
        self.counts: Counter = Counter()

    def first(self, task: str) -> int:
        """First-order backward passes through ``task``'s head."""
        return self.counts[("first", task)]

    def second(self, task: str) -> int:
        """Double backward passes (differentiating a gradient graph) through ``task``'s head."""
        return self.counts[("second", task)]

    def batched(self, task: str) -> int:
        """Passes through ``task``'s head inside a vmapped backward (``is_grads_batched``): several rows at once,
        so a head reached there does the work of as many traversals as the call has rows."""
        return self.counts[("batched", task)]

    def reset(self) -> None:
        self.counts.clear()

    @contextmanager
    def counting(self) -> Iterator[HeadTraversals]:
        """Wrap each head's input while inside (forward passes run in here are counted)."""

        def hook_for(task: str):
            def pre_hook(module: nn.Module, args: tuple) -> tuple:
                return (_Counted.apply(args[0], self.counts, task, "first"), *args[1:])

            return pre_hook

        handles = [head.register_forward_pre_hook(hook_for(task)) for task, head in self.heads.items()]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
