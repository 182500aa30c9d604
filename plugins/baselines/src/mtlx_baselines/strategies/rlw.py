"""RLW (Lin, Ye, Zhang, Tsang, TMLR 2022): random loss weights ``softmax(z)``, ``z ~ N(0, I)`` every step.

The weights sum to 1, so the update is 1/T of EW's on average.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import LossWeighting, StepContext

from ..rng import Seeded

__all__ = ["RandomLossWeighting"]


class RandomLossWeighting(Seeded, LossWeighting):
    """RLW (Lin et al., TMLR 2022): softmax of standard normal draws as loss weights."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            seed: seed of the weight draws (default: drawn from the run's seed)
        """

        seed: int | None = None

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self._init_generator(config.seed)

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        draws = torch.randn(losses.shape[0], generator=self.generator, dtype=torch.float64)
        weights = torch.softmax(draws, 0).to(losses)
        return (weights * losses).sum(), weights
