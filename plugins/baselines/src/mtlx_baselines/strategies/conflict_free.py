"""ConFIG (Liu, Chu & Thuerey, ICLR 2025): conflict-free inverse gradients.

Eq. 2 of the paper, as torchjd's ``ConFIG`` and the official code compute it:
``U = [g_t / ‖g_t‖]`` (a zero gradient gives a zero row), ``ĝ = U⁺ 1`` (the
direction with the same cosine to every task's gradient when the gradients are
independent), ``u = ĝ / ‖ĝ‖`` and ``d = (Σ_t g_tᵀ u) u``: the length is the
sum of the gradients' projections on u (sum scale).

Our own code, on the ``T x T`` Gram matrix instead of the ``[T, N]`` units:
with ``n_t = ‖g_t‖``, ``M = U Uᵀ = K / (n nᵀ)`` and ``U⁺ = Uᵀ M⁺`` (an identity
for any matrix), ``ĝ = Gᵀ a`` with ``a = M⁺ 1 / n``, so
``d = Gᵀ w``, ``w = (1ᵀ K a / aᵀ K a) a``. Singular values of U below
``max(T, N) ε σ_max`` count as zero, as ``torch.linalg.pinv``/``lstsq`` do by
default in torchjd and the official code (ε of the gradients' dtype; on M,
whose eigenvalues are σ², also those at its rounding level ``T ε λ_max``).
"""

from __future__ import annotations

import attrs
import torch

from mtlx import StepContext

from ..linalg import gram
from ._gradient import GradientAggregation, grad_mode_field

__all__ = ["ConFIG", "aggregate"]


def aggregate(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ConFIG on ``[T, N]`` gradients: ``d = (Σ_t g_tᵀu) u``, u the unit vector equally close to every ``g_t``."""
    num_tasks, size = G.shape
    eps = torch.finfo(G.dtype).eps
    K = gram(G).double()
    norms = K.diagonal().clamp_min(0).sqrt()
    inverse = torch.where(norms > 0, 1 / norms.where(norms > 0, 1), 0)
    M = inverse[:, None] * K * inverse[None, :]
    rtol = max((max(num_tasks, size) * eps) ** 2, num_tasks * eps)
    a = inverse * (torch.linalg.pinv(M, rtol=rtol, hermitian=True) @ torch.ones_like(norms))
    squared = a @ K @ a
    if float(squared) <= 0.0:  # ĝ = 0: the gradients cancel (or all are 0), d = 0
        weights = torch.zeros(num_tasks, dtype=G.dtype, device=G.device)
    else:
        weights = ((K @ a).sum() / squared * a).to(G)
    return weights @ G, weights


class ConFIG(GradientAggregation):
    """ConFIG (Liu et al., ICLR 2025): the direction equally aligned with every task, scaled by their projections."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads)
