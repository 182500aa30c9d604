"""Aligned-MTL (Senushkin et al., CVPR 2023): align the gradient system to condition number 1.

Backend: torchjd's ``AlignedMTLWeighting`` (``torch.linalg.eigh``; LibMTL and
the original call ``torch.symeig``, removed from torch) with preference
vector ones, so ``α = B·1`` as in the paper (torchjd's default, the mean,
would divide d by T). ``K = VΛVᵀ``, eigenvalues above ``λ_max·T·eps`` kept,
``B = √λ_min · V Λ^(-1/2) Vᵀ``, ``d = Σ α_t g_t``.
"""

from __future__ import annotations

import attrs
import torch
from torchjd.aggregation import AlignedMTLWeighting

from mtlx import StepContext

from ..linalg import gram
from ._gradient import GradientAggregation, grad_mode_field

__all__ = ["SCALE_MODES", "AlignedMTL", "aggregate"]

#: the scale the aligned singular values take: λ_min (paper default), the median or the mean eigenvalue
SCALE_MODES = ("min", "median", "rmse")


def aggregate(G: torch.Tensor, *, scale_mode: str = "min") -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned-MTL on ``[T, N]`` gradients (free scale: singular values set to √λ_min)."""
    if scale_mode not in SCALE_MODES:
        raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
    K = gram(G)
    weighting = AlignedMTLWeighting(pref_vector=torch.ones(G.shape[0], dtype=K.dtype, device=K.device),
                                    scale_mode=scale_mode)
    weights = weighting(K)
    return weights @ G, weights


class AlignedMTL(GradientAggregation):
    """Aligned-MTL (Senushkin et al., CVPR 2023); ``grad_mode=rep`` is the paper's Aligned-MTL-UB."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            scale_mode: singular values of the aligned system: √λ_min (``min``, the paper), the median or the RMS of the
                √λ (torchjd's ``scale_mode``)
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        scale_mode: str = attrs.field(default="min", validator=attrs.validators.in_(SCALE_MODES))
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads, scale_mode=self.config.scale_mode)
