"""GLS (Chennupati et al., CVPR-W 2019): the geometric mean of the task losses.

Loss ``(Π_t L_t)^(1/T)``, computed as ``exp(mean log L)`` (the product
under/overflows with many tasks). The weights reported are the effective
ones, ``GLS / (T L_t)`` (LibMTL logs ``L_t/(T ΠL)``, which is not).
"""

from __future__ import annotations

import attrs
import torch

from mtlx import LossWeighting, StepContext

from ._positive import require_positive

__all__ = ["GeometricLossStrategy"]


class GeometricLossStrategy(LossWeighting):
    """GLS (Chennupati et al., 2019): minimise the geometric mean of the losses."""

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        require_positive(losses, self.tasks, step, "gls")
        total = torch.exp(torch.log(losses).mean())
        return total, (total / (losses.shape[0] * losses)).detach()
