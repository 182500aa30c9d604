"""Nash-MTL (Navon et al., ICML 2022): the Nash bargaining solution ``(K α)_t = 1/α_t``.

Solved exactly by :func:`~mtlx_baselines.linalg.alpha_fair_weights` (α = 1;
Nash-MTL is FairGrad with α = 1), not by the original's CCCP sequence of
cvxpy/ECOS problems: that needs ECOS, which cvxpy >= 1.6 no longer installs
(LibMTL and torchjd then swallow the error and keep the previous weights,
i.e. EW), and it stops at a 1e-3 residual. Gradients that admit no solution
raise :class:`~mtlx_baselines.errors.SolverError` with the step.

The method backpropagates ``Σ α_t L_t``: heads get ``α_t ∇L_t``; the shared
update is ``Σ α_t g_t`` clipped to ``max_norm`` (0 disables the clip).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import StepContext, StepResult
from mtlx.gradients import grad_or_zeros

from ..linalg import alpha_fair_weights, gram
from ._gradient import GradientAggregation, apply_direction, grad_mode_field, named, representation
from ._state import WithAggregatorState

__all__ = ["NashMTL", "NashState", "aggregate", "clip"]


@attrs.define
class NashState:
    alpha: torch.Tensor | None = None  # weights of the last solve, reused until the next one
    steps: int = 0


def clip(direction: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``direction`` scaled down to norm ``max_norm`` when longer (0: no clipping)."""
    norm = float(direction.norm())
    return direction * (max_norm / norm) if 0 < max_norm < norm else direction


def aggregate(G: torch.Tensor, *, max_norm: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Nash-MTL on ``[T, N]`` gradients: ``(clip(Σ α_t g_t), α)``; α solves ``K α = 1/α``."""
    weights = alpha_fair_weights(gram(G), 1.0)
    return clip(weights @ G, max_norm), weights


class NashMTL(WithAggregatorState, GradientAggregation):
    """Nash-MTL (Navon et al., ICML 2022): bargaining weights, exact; heads weighted; update clipped."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            update_weights_every: solve for α every k steps, reusing it (and skipping per-task gradients) in between
            max_norm: clip the shared update to this norm (0: off); LibMTL and the paper use 1.0
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        update_weights_every: int = attrs.field(default=1, validator=attrs.validators.ge(1))
        max_norm: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)
    weighted_heads = True

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = NashState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        direction, self.state.alpha = aggregate(grads, max_norm=self.config.max_norm)
        return direction, self.state.alpha

    def backward(self, step: StepContext) -> StepResult:
        update = self.state.alpha is None or self.state.steps % self.config.update_weights_every == 0
        result = super().backward(step) if update else self._reuse(step)
        self.state.steps += 1
        return result

    def _reuse(self, step: StepContext) -> StepResult:
        """Between solves: backpropagate ``Σ α_t L_t`` with the cached α, one pass, no per-task gradients."""
        assert self.state.alpha is not None
        losses = step.loss_vector()
        weights = self.state.alpha.to(losses)
        if self.grad_mode == "shared":
            inputs = step.shared_parameters()
        else:
            inputs = [representation(step, type(self).__name__)]
        grads = grad_or_zeros((weights * losses).sum(), inputs, retain_graph=True)
        direction = torch.cat([g.reshape(-1) for g in grads]).float()
        apply_direction(step, self.grad_mode, clip(direction, self.config.max_norm))
        step.backward_heads(weights)
        return StepResult(weights=named(self.tasks, weights))
