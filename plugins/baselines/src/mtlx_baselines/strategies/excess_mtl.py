"""ExcessMTL (He et al., ICML 2024): up-weight tasks whose excess risk falls slowest.

Excess risk ``e_t = g_tᵀ diag(1/√(Σ_s g_{t,s}² + 1e-7)) g_t`` (an AdaGrad
estimate); the first observation of each task is its baseline e⁰; then
``w_t ← w_t exp(η e_t/e⁰_t)`` renormalised to ``Σ w = T`` (update before use;
w = 1 at the first step), and ``Σ w_t L_t`` is backpropagated (heads get
``w_t ∇L_t``). Our own code: torchjd's ``ExcessMTL`` starts from 1/T, moves
the weights already at the first step and keeps its state private. A task
whose gradient is zero when first seen gets its baseline at its first
nonzero gradient (LibMTL divides by zero there).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import StepContext

from ._gradient import GradientAggregation
from ._state import WithAggregatorState

__all__ = ["ExcessMTL", "ExcessMTLState", "aggregate"]


@attrs.define
class ExcessMTLState:
    squares: torch.Tensor | None = None  # Σ_s g_s², [T, N]
    baseline: torch.Tensor | None = None  # e⁰, [T]; 0 until a task's first nonzero gradient
    weights: torch.Tensor | None = None  # w, [T]
    steps: int = 0


def aggregate(
    G: torch.Tensor, *, state: ExcessMTLState, robust_step_size: float = 1e-2
) -> tuple[torch.Tensor, torch.Tensor]:
    """ExcessMTL on ``[T, N]`` gradients; updates ``state``; returns ``d = Σ w_t g_t`` and w."""
    num_tasks = G.shape[0]
    if state.squares is None or state.baseline is None or state.weights is None:
        state.squares = torch.zeros_like(G)
        state.baseline = torch.zeros(num_tasks, dtype=G.dtype, device=G.device)
        state.weights = torch.ones(num_tasks, dtype=G.dtype, device=G.device)
    squared = G.square()
    state.squares.add_(squared)
    excess = (squared / (state.squares + 1e-7).sqrt()).sum(1)
    first_seen = (state.baseline == 0) & (excess > 0)
    state.baseline = torch.where(first_seen, excess, state.baseline)
    if state.steps > 0:
        ratio = torch.where(state.baseline > 0, excess / state.baseline, torch.zeros_like(excess))
        state.weights = num_tasks * torch.softmax(state.weights.log() + robust_step_size * ratio, 0)
    state.steps += 1
    return state.weights @ G, state.weights


class ExcessMTL(WithAggregatorState, GradientAggregation):
    """ExcessMTL (He et al., ICML 2024): robust weighting by relative excess risk; heads weighted."""

    gradient_copies = 1  # the accumulated squared gradients, [T, N]

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            robust_step_size: η of the exponentiated update (LibMTL ``robust_step_size``)
        """

        robust_step_size: float = attrs.field(default=1e-2, validator=attrs.validators.gt(0))

    aggregate = staticmethod(aggregate)
    weighted_heads = True

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = ExcessMTLState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads, state=self.state, robust_step_size=self.config.robust_step_size)
