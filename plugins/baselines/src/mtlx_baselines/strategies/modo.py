"""MoDo (Chen, Fernando, Ying and Chen, NeurIPS 2023, "Three-way trade-off in multi-objective learning").

Per step, with the per-task gradients ``G₀, G₁, G₂`` (``[T, N]``) of three independent batches::

    λ ← Π_Δ(λ − γ (G₀ G₁ᵀ λ + ρ λ)),    d = G₂ᵀ λ

(LibMTL's ``MoDo``; Π_Δ the Euclidean projection onto the simplex, λ₀ = 1/T). λ is the state.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import StepContext

from ._double_sampling import DoubleSampling, project_simplex

__all__ = ["MoDo", "MoDoState", "update"]


@attrs.define
class MoDoState:
    lambdas: torch.Tensor | None = None  # λ, [T]


def update(G0: torch.Tensor, G1: torch.Tensor, G2: torch.Tensor, *, state: MoDoState, gamma: float = 1e-3,
           rho: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """One MoDo step on three batches' ``[T, N]`` gradients; updates ``state``; returns ``d = G₂ᵀλ`` and λ."""
    if state.lambdas is None:
        state.lambdas = torch.full((G0.shape[0],), 1.0 / G0.shape[0], dtype=G0.dtype, device=G0.device)
    lam = state.lambdas
    state.lambdas = project_simplex(lam - gamma * (G0 @ (G1.T @ lam) + rho * lam))
    return state.lambdas @ G2, state.lambdas


class MoDo(DoubleSampling):
    """MoDo (Chen et al., NeurIPS 2023): MGDA's weights by stochastic gradient steps on double-sampled gradients."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            gamma: step size γ of the λ update (LibMTL ``MoDo_gamma``)
            rho: ℓ2 regularisation ρ of the λ update (LibMTL ``MoDo_rho``)
        """

        gamma: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0))
        rho: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = MoDoState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return update(grads, step.shared_grads(1), step.shared_grads(2), state=self.state, gamma=self.config.gamma,
                      rho=self.config.rho)
