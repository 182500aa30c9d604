"""FairGrad (Ban & Ji, ICML 2024): α-fair weights ``(K w)_t = w_t^(-1/α)``, ``d = Σ w_t g_t``.

Solved by :func:`~mtlx_baselines.linalg.alpha_fair_weights` (damped Newton),
not torchjd's ``FairGradWeighting`` (scipy ``least_squares`` from 1/T, as the
original): that one stops far from the solution when gradients are small
(relative residual 0.45 at ‖g‖ ≈ 1e-3) and is ~10x slower; neither checks the
result. Heads get ``w_t ∇L_t`` (the method backpropagates ``Σ w_t L_t``).
"""

from __future__ import annotations

import attrs
import torch

from mtlx import StepContext

from ..linalg import alpha_fair_weights, gram
from ._gradient import GradientAggregation, grad_mode_field

__all__ = ["FairGrad", "aggregate"]


def aggregate(G: torch.Tensor, *, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """FairGrad on ``[T, N]`` gradients (free scale, no clipping, as LibMTL)."""
    weights = alpha_fair_weights(gram(G), alpha)
    return weights @ G, weights


class FairGrad(GradientAggregation):
    """FairGrad (Ban & Ji, ICML 2024): α-fair resource allocation; α=1 is Nash-MTL without the clip."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            alpha: fairness: 1 proportional (LibMTL default), 2 minimum potential delay (the paper's runs), → ∞ max-min
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        alpha: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)
    weighted_heads = True

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads, alpha=self.config.alpha)
