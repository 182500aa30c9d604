"""MoCo (Fernando et al., ICLR 2023): MGDA on tracked (momentum) gradients, LibMTL's variant.

``h_t = L_t g_t/(‖g_t‖+1e-8)``; ``Y ← Y − β_k(Y − H)``; ``λ ← softmax(λ −
γ_k(YYᵀ + ρI)λ)``; ``d = Yᵀλ``, with ``β_k = β/k^σβ``, ``γ_k = γ/k^σγ``.
The paper projects λ onto the simplex and tracks the raw gradients; LibMTL
(and we) use the softmax and the loss-scaled unit gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import StepContext

from ._gradient import GradientAggregation
from ._state import WithAggregatorState

__all__ = ["MoCo", "MoCoState", "aggregate"]


@attrs.define
class MoCoState:
    tracking: torch.Tensor | None = None  # Y, [T, N]
    lambdas: torch.Tensor | None = None  # λ, [T]
    steps: int = 0


def aggregate(
    G: torch.Tensor,
    losses: torch.Tensor,
    *,
    state: MoCoState,
    beta: float = 0.5,
    beta_sigma: float = 0.5,
    gamma: float = 0.1,
    gamma_sigma: float = 0.5,
    rho: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo on ``[T, N]`` gradients and ``[T]`` losses; updates ``state``; returns ``d = Yᵀλ`` and λ."""
    num_tasks = G.shape[0]
    state.steps += 1
    if state.tracking is None or state.lambdas is None:
        state.tracking = torch.zeros_like(G)
        state.lambdas = torch.full((num_tasks,), 1.0 / num_tasks, dtype=G.dtype, device=G.device)
    target = G / (G.norm(dim=1, keepdim=True) + 1e-8) * losses.detach().to(G)[:, None]
    state.tracking.sub_(beta / state.steps**beta_sigma * (state.tracking - target))
    Y = state.tracking
    curvature = Y @ Y.T + rho * torch.eye(num_tasks, dtype=G.dtype, device=G.device)
    state.lambdas = torch.softmax(state.lambdas - gamma / state.steps**gamma_sigma * (curvature @ state.lambdas), 0)
    return state.lambdas @ Y, state.lambdas


class MoCo(WithAggregatorState, GradientAggregation):
    """MoCo (Fernando et al., ICLR 2023): stochastic multi-objective descent with gradient tracking."""

    gradient_copies = 1  # its tracked gradients Y, [T, N]

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            beta: tracking rate β of ``β_k = β/k^σβ`` (LibMTL ``MoCo_beta``)
            beta_sigma: its decay exponent σβ (LibMTL ``MoCo_beta_sigma``)
            gamma: step γ of the λ update, ``γ_k = γ/k^σγ`` (LibMTL ``MoCo_gamma``)
            gamma_sigma: its decay exponent σγ (LibMTL ``MoCo_gamma_sigma``)
            rho: ridge ρ added to ``YYᵀ`` in the λ update (LibMTL ``MoCo_rho``)
        """

        beta: float = 0.5
        beta_sigma: float = 0.5
        gamma: float = 0.1
        gamma_sigma: float = 0.5
        rho: float = 0.0

    aggregate = staticmethod(aggregate)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = MoCoState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return aggregate(grads, step.loss_vector(), state=self.state, beta=c.beta, beta_sigma=c.beta_sigma,
                         gamma=c.gamma, gamma_sigma=c.gamma_sigma, rho=c.rho)
