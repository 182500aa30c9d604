"""Finiteness of many tensors at once, without a host sync per tensor.

``max |x|`` of a tensor is finite exactly when every element is (it cannot
overflow as a sum of squares can), and ``torch._foreach_norm`` computes it
for a list of tensors in fused kernels; the flags stay on the device until the
caller reads them together with whatever else it needs from the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

__all__ = ["finite_flags", "watched_tensors"]


def finite_flags(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One bool per tensor (non-empty, floating, on one device): whether all of its elements are finite."""
    if not tensors:
        return torch.ones(0, dtype=torch.bool)
    norms = torch._foreach_norm([t.detach() for t in tensors], float("inf"))
    return torch.stack([n.isfinite() for n in norms])


def watched_tensors(model: torch.nn.Module, extra: Iterable[torch.Tensor] = ()) -> tuple[list[str], list[torch.Tensor]]:
    """Names (``parameter 'x'`` / ``buffer 'y'``) and tensors of the model's floating state and ``extra``."""
    named = [(f"parameter {n!r}", p) for n, p in model.named_parameters()]
    named += [(f"buffer {n!r}", b) for n, b in model.named_buffers()]
    named += [(f"strategy parameter {i}", p) for i, p in enumerate(extra)]
    kept = [(n, t) for n, t in named if t.is_floating_point() and t.numel() > 0]
    return [n for n, _ in kept], [t for _, t in kept]
