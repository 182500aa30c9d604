"""Shared parts of the double-sampling methods (MoDo, SDMGrad): three independent batches per step.

Both take their ``[T, N]`` per-task gradients of three independent mini-batches from the core
(``StepContext.shared_grads(batch=j)``): two of them estimate the Gram matrix ``G Gᵀ`` without the bias
of one batch's ``G₀ G₀ᵀ``, the third gives the update direction. The heads get ``∇L_t`` averaged over the
three batches (MoDo's LibMTL code; LibMTL's SDMGrad sums them, a 3x learning rate on the heads only).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ._gradient import GradientAggregation
from ._state import WithAggregatorState

__all__ = ["DoubleSampling", "project_simplex"]


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of ``v`` (``[T]``) onto the probability simplex (sort-based, exact)."""
    u = torch.sort(v, descending=True).values
    cumulative = u.cumsum(0) - 1.0
    ranks = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    rho = int((u - cumulative / ranks > 0).nonzero()[-1])  # the last index where the sorted entry stays positive
    return (v - cumulative[rho] / (rho + 1)).clamp(min=0)


class DoubleSampling(WithAggregatorState, GradientAggregation):
    """A gradient method that reads the per-task gradients of three independent batches per step."""

    batches_per_step: ClassVar[int] = 3
