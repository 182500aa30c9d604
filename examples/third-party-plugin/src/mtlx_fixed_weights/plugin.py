"""Registers the `fixed-weights` strategy with mtlx."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import torch

import mtlx


class FixedWeights(mtlx.LossWeighting):
    """Σ_t w_t L_t with per-task weights from the config (unlisted tasks: ``default``)."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            weights: ``{task: weight}`` (``-o 'strategy.weights={seg = 1.0, depth = 0.5}'``)
            default: the weight of every task not in ``weights``
        """

        weights: Mapping[str, float] = attrs.field(factory=dict)
        default: float = 1.0

    def __init__(self, config: Config, *, tasks):
        super().__init__(config, tasks=tasks)
        unknown = set(config.weights) - set(self.tasks)
        if unknown:
            raise mtlx.ConfigError(f"fixed-weights: weights for unknown tasks {sorted(unknown)}; tasks: {self.tasks}")
        self._weights = torch.tensor([float(config.weights.get(t, config.default)) for t in self.tasks])

    def combine(self, losses: torch.Tensor, step: mtlx.StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self._weights.to(losses)
        return (weights * losses).sum(), weights


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.strategies.register("fixed-weights", FixedWeights)
