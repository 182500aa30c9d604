"""IMTL (Liu et al., ICLR 2021): impartial MTL, loss side (IMTL-L) and gradient side (IMTL-G).

- IMTL-L: learnable s (an extra parameter, init 0); task loss ``e^s_t L_t − s_t``.
- IMTL-G: ``d = Σ α_t g_t`` with equal projections ``dᵀu_t`` on every unit
  gradient ``u_t`` and ``Σ α_t = 1`` (α may be negative). Backend: torchjd's
  ``IMTLGWeighting`` (``α ∝ K⁺ ‖g‖``, the paper's closed form when K is
  invertible and defined when it is not, where LibMTL's inverse fails).

``variant=hybrid`` (LibMTL's IMTL) applies G to the L-scaled losses; heads
and s get ``∇ Σ (e^s_t L_t − s_t)``. As a :class:`~mtlx.LossWeighting`,
``combine`` is the IMTL-L part, which is what Rep-MTL composes with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
import torch
from torch import nn
from torchjd.aggregation import IMTLGWeighting

from mtlx import LossWeighting, StepContext, StepResult

from ..linalg import gram
from ._gradient import apply_direction, at_step, grad_mode_field, named, needs_for, task_gradients

__all__ = ["IMTL", "VARIANTS", "aggregate"]

VARIANTS = ("hybrid", "loss", "gradient")
_WEIGHTING = IMTLGWeighting()


def aggregate(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IMTL-G on ``[T, N]`` gradients: weights sum to 1, ``d`` projects equally on every ``g_t/‖g_t‖``."""
    weights = _WEIGHTING(gram(G))
    return weights @ G, weights


class IMTL(LossWeighting):
    """IMTL (Liu et al., ICLR 2021): IMTL-L (``variant=loss``), IMTL-G (``variant=gradient``) or both (default)."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            variant: hybrid = IMTL-L + IMTL-G (LibMTL's IMTL), loss = IMTL-L only, gradient = IMTL-G only
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        variant: str = attrs.field(default="hybrid", validator=attrs.validators.in_(VARIANTS))
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.needs = None if config.variant == "loss" else needs_for(config.grad_mode)
        self.log_scales = nn.Parameter(torch.zeros(len(self.tasks))) if config.variant != "gradient" else None

    def extra_parameters(self) -> Iterable[nn.Parameter]:
        return () if self.log_scales is None else (self.log_scales,)

    def _scales(self, losses: torch.Tensor) -> torch.Tensor | None:
        return None if self.log_scales is None else self.log_scales.to(losses.device).exp()

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """IMTL-L: ``Σ e^s_t L_t − s_t`` (the plain sum for ``variant=gradient``)."""
        scales = self._scales(losses)
        if scales is None:
            return losses.sum(), torch.ones_like(losses)
        return (scales * losses - self.log_scales.to(losses.device)).sum(), scales.detach()

    def backward(self, step: StepContext) -> StepResult:
        if self.config.variant == "loss":
            return super().backward(step)
        losses = step.loss_vector()
        scales = self._scales(losses)
        grads = task_gradients(step, self.config.grad_mode, "IMTL")
        if scales is not None:
            grads = grads * scales.detach().to(grads)[:, None]  # ∇(e^s L − s) = e^s ∇L on the model
        with at_step(step):
            direction, alpha = aggregate(grads)
        apply_direction(step, self.config.grad_mode, direction)
        total, _ = self.combine(losses, step)
        step.backward(total, inputs=[*step.task_parameters(), *self.extra_parameters()])
        effective = alpha if scales is None else alpha * scales.detach().to(alpha)
        return StepResult(weights=named(self.tasks, effective))
