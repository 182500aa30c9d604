"""UW (Kendall, Gal, Cipolla, CVPR 2018): homoscedastic-uncertainty weighting with learnable log-variances.

Loss ``Σ_t L_t / (2 e^{s_t}) + s_t / 2``. s is an extra parameter (own
optimiser group, no weight decay), not a model parameter as in LibMTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
import torch
from torch import nn

from mtlx import LossWeighting, StepContext

__all__ = ["UncertaintyWeighting"]


class UncertaintyWeighting(LossWeighting):
    """UW (Kendall et al., CVPR 2018): ``Σ L_t/(2e^s_t) + s_t/2`` with learnable s."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            init: initial s (LibMTL: -0.5, weight ≈ 0.82; the Nash-MTL/FAMO code and the paper's form start at 0)
        """

        init: float = -0.5

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(config.init)))

    def extra_parameters(self) -> Iterable[nn.Parameter]:
        return (self.log_vars,)

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.log_vars.to(losses.device)
        weights = 0.5 * torch.exp(-s)
        return (weights * losses + 0.5 * s).sum(), weights.detach()
