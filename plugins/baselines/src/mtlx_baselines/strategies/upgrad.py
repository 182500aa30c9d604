"""UPGrad (Quinton & Rey, arXiv 2406.16232): the mean of each gradient projected onto the dual cone.

Backend: torchjd's ``UPGradWeighting`` (quadprog). We hand it ``K / tr K``:
torchjd compares ``tr K`` with an *absolute* ``norm_eps = 1e-4`` and zeroes
K below it, which silently turns UPGrad into the plain mean whenever
``Σ‖g_t‖² < 1e-4`` (common late in training). The QP is scale-invariant, so
normalising first changes nothing else; all-zero gradients still give d = 0.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torchjd.aggregation import UPGradWeighting
from torchjd.linalg import QuadprogProjector

from mtlx import StepContext

from ..linalg import gram
from ._gradient import GradientAggregation, grad_mode_field

__all__ = ["DualConeAggregation", "UPGrad", "aggregate", "dual_cone_weights"]


def dual_cone_weights(G: torch.Tensor, weighting: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """A torchjd dual-cone weighting (UPGrad's, DualProj's) of ``[T, N]`` gradients, given ``K / tr K``.

    All-zero gradients (``tr K = 0``) get the mean weights (d = 0).
    """
    K = gram(G).double()
    trace = K.trace()
    if float(trace) <= 0.0:
        return torch.full((G.shape[0],), 1.0 / G.shape[0], dtype=G.dtype, device=G.device)
    return weighting(K / trace).to(G)


def aggregate(G: torch.Tensor, *, reg_eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """UPGrad on ``[T, N]`` gradients (mean scale): ``d = (1/T) Σ_t π(g_t)`` and its weights."""
    weights = dual_cone_weights(G, UPGradWeighting(projector=QuadprogProjector(norm_eps=0.0, reg_eps=reg_eps)))
    return weights @ G, weights


class DualConeAggregation(GradientAggregation):
    """A torchjd dual-cone method (UPGrad, DualProj): ``aggregate(G, reg_eps=...)`` with the ridge as its option."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            reg_eps: ridge added to K / tr K so the QP is strictly convex (torchjd's and LibMTL's default)
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        reg_eps: float = attrs.field(default=1e-4, validator=attrs.validators.ge(0))
        grad_mode: str = grad_mode_field()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return self.aggregate(grads, reg_eps=self.config.reg_eps)


class UPGrad(DualConeAggregation):
    """UPGrad (Quinton & Rey, 2024): no task gets a negative directional derivative (mean scale)."""

    aggregate = staticmethod(aggregate)
