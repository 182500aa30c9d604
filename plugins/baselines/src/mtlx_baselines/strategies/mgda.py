"""MGDA (Désidéri 2012; Sener & Koltun, NeurIPS 2018): the min-norm point of the gradients' convex hull.

With ``grad_mode=rep`` this is MGDA-UB (the paper's upper bound on Z).
``d = Σ α_t ĝ_t``, ``ĝ_t = g_t / n_t``, ``α = argmin_{α∈Δ} ‖Σ α_t ĝ_t‖²`` solved
exactly (quadprog) instead of Frank-Wolfe: LibMTL's 0.001/0.999 clip for T=2
and torchjd's Frank-Wolfe stopping rule both return a point that is not the
minimum (see the plugin README).
"""

from __future__ import annotations

import attrs
import torch

from mtlx import StepContext

from ..linalg import gram, min_norm_weights
from ._gradient import GradientAggregation, grad_mode_field

__all__ = ["MGDA", "NORMALIZATIONS", "aggregate"]

#: LibMTL's ``mgda_gn``: n_t = 1, ‖g_t‖, L_t or L_t‖g_t‖.
NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def aggregate(
    G: torch.Tensor, *, losses: torch.Tensor | None = None, normalization: str = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    """MGDA on ``[T, N]`` gradients; returns ``d`` and the effective weights ``α_t / n_t`` (``d = Σ w_t g_t``).

    A row whose normaliser is 0 (a zero gradient) stays 0, so ``d = 0``: the
    tasks are Pareto-stationary.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization in ("loss", "loss+") and losses is None:
        raise ValueError(f"normalization={normalization!r} needs the task losses")
    scale = torch.ones(G.shape[0], dtype=G.dtype, device=G.device)
    if normalization in ("l2", "loss+"):
        scale = scale * G.norm(dim=1)
    if normalization in ("loss", "loss+"):
        assert losses is not None
        scale = scale * losses.detach().to(G)
    inverse = torch.where(scale > 0, 1.0 / scale, torch.zeros_like(scale))
    weights = min_norm_weights(gram(G * inverse[:, None])) * inverse
    return weights @ G, weights


class MGDA(GradientAggregation):
    """MGDA (Sener & Koltun, NeurIPS 2018): min-norm convex combination; MGDA-UB with ``grad_mode=rep``."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            normalization: LibMTL ``mgda_gn``: none | l2 | loss | loss+
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        normalization: str = attrs.field(default="none", validator=attrs.validators.in_(NORMALIZATIONS))
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads, losses=step.loss_vector(), normalization=self.config.normalization)
