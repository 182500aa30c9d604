"""DualProj (torchjd 0.18; Quinton & Rey, arXiv 2406.16232): the mean gradient projected onto the dual cone.

``d = π(ḡ)``, the closest vector to the mean ``ḡ = (1/T) Σ_t g_t`` whose
inner product with every ``g_t`` is ``>= 0`` (GEM's projection, Lopez-Paz &
Ranzato, NeurIPS 2017, Eq. 11): ``d = Σ w_t g_t`` with ``w = argmin_{w ≥ 1/T} wᵀKw``.
UPGrad projects each ``g_t`` and averages; DualProj averages, then projects.
Backend: torchjd's ``DualProjWeighting`` on ``K / tr K``, as UPGrad (see
:mod:`.upgrad` for why the trace goes first).
"""

from __future__ import annotations

import torch
from torchjd.aggregation import DualProjWeighting
from torchjd.linalg import QuadprogProjector

from .upgrad import DualConeAggregation, dual_cone_weights

__all__ = ["DualProj", "aggregate"]


def aggregate(G: torch.Tensor, *, reg_eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """DualProj on ``[T, N]`` gradients (mean scale): the mean projected onto the dual cone, and its weights."""
    weights = dual_cone_weights(G, DualProjWeighting(projector=QuadprogProjector(norm_eps=0.0, reg_eps=reg_eps)))
    return weights @ G, weights


class DualProj(DualConeAggregation):
    """DualProj (torchjd; GEM's projection): the mean gradient projected onto the dual cone (no task worsens)."""

    aggregate = staticmethod(aggregate)
