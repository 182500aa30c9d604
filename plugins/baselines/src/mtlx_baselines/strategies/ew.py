"""Equal weighting (EW): the plain sum of task losses, LibMTL's convention (weight 1 each)."""

from __future__ import annotations

import attrs
import torch

from mtlx import LossWeighting, StepContext

__all__ = ["EqualWeighting"]


class EqualWeighting(LossWeighting):
    """Equal weighting: minimise Σ_t L_t (every weight 1)."""

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return losses.sum(), torch.ones_like(losses)
