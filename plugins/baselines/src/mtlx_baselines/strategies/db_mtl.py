"""DB-MTL (Lin et al., arXiv 2308.12029): log losses, EMA gradients, every task scaled to the largest norm.

``g_t = ∇ log(L_t + 1e-8)``, ``ĝ_t ← β_k ĝ_t + (1−β_k) g_t`` with
``β_k = β / k^σ``, ``d = Σ_t (max_j ‖ĝ_j‖ / (‖ĝ_t‖ + 1e-8)) ĝ_t``. The buffer
starts at 0 without bias correction, as in the paper's code (the first
steps are scaled by 1−β). Heads get ``∇ log(L_t + 1e-8)`` (the loss side).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import StepContext, StepResult

from ._gradient import GradientAggregation, at_step, named
from ._positive import require_positive
from ._state import WithAggregatorState

__all__ = ["DBMTL", "LOG_EPS", "DBMTLState", "aggregate"]

LOG_EPS = 1e-8


@attrs.define
class DBMTLState:
    buffer: torch.Tensor | None = None  # ĝ, [T, N]
    steps: int = 0


def aggregate(
    G: torch.Tensor, *, state: DBMTLState, beta: float = 0.9, beta_sigma: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """DB-MTL on ``[T, N]`` gradients of the *log* losses; updates ``state``; returns d and the norm scales."""
    state.steps += 1
    rate = beta / state.steps**beta_sigma
    if state.buffer is None:
        state.buffer = torch.zeros_like(G)
    state.buffer.mul_(rate).add_(G, alpha=1.0 - rate)
    norms = state.buffer.norm(dim=1)
    scales = norms.max() / (norms + 1e-8)
    return scales @ state.buffer, scales


class DBMTL(WithAggregatorState, GradientAggregation):
    """DB-MTL (Lin et al., 2023): dual-balancing of log losses and EMA gradient magnitudes."""

    gradient_copies = 1  # the EMA of the gradients, [T, N]

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            beta: EMA rate of the gradient buffer (LibMTL ``DB_beta``)
            beta_sigma: decay exponent of the rate, β_k = β / k^σ (LibMTL ``DB_beta_sigma``)
        """

        beta: float = attrs.field(default=0.9, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
        beta_sigma: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))

    aggregate = staticmethod(aggregate)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = DBMTLState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads, state=self.state, beta=self.config.beta, beta_sigma=self.config.beta_sigma)

    def backward(self, step: StepContext) -> StepResult:
        losses = step.loss_vector().detach()
        require_positive(losses, self.tasks, step, "db-mtl", allow_zero=True)  # log(L + ε): ε covers L = 0
        inverse = 1.0 / (losses + LOG_EPS)  # ∇ log(L + ε) = ∇L / (L + ε)
        grads = step.shared_grads() * inverse.to(torch.float32)[:, None]
        with at_step(step):
            direction, scales = self.aggregate_grads(grads, step)
        step.set_shared_grad(direction)
        step.backward_heads(inverse)
        return StepResult(weights=named(self.tasks, scales))
