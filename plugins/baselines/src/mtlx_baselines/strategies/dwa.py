"""DWA (Liu, Johns, Davison, CVPR 2019): weights from the rate of change of each task's epoch loss.

``w_t = T softmax_t(r / τ)``, ``r_t = L̄_t(e−1) / L̄_t(e−2)``, with ``w = 1``
until two epochs are complete. The history comes from ``on_epoch_end``.
(The Nash-MTL repository's per-iteration window variant is not this.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from mtlx import ConfigError, LossWeighting, StepContext

__all__ = ["DynamicWeightAverage"]


class DynamicWeightAverage(LossWeighting):
    """DWA (Liu et al., CVPR 2019): ``T softmax(L̄(e−1)/L̄(e−2) / τ)``."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            temperature: softmax temperature τ (LibMTL ``T``)
        """

        temperature: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.history: dict[int, torch.Tensor] = {}  # epoch -> mean losses [T]; the last two epochs

    def on_epoch_end(self, epoch: int, mean_losses: Mapping[str, float]) -> None:
        self.history[epoch] = torch.tensor([float(mean_losses[t]) for t in self.tasks], dtype=torch.float64)
        self.history = {e: v for e, v in self.history.items() if e >= epoch - 1}

    def weights(self, epoch: int) -> torch.Tensor:
        """``[T]`` weights for training during ``epoch`` (float64)."""
        last, before = self.history.get(epoch - 1), self.history.get(epoch - 2)
        if last is None or before is None:
            return torch.ones(len(self.tasks), dtype=torch.float64)
        if not bool((before != 0).all()):
            bad = self.tasks[int(torch.nonzero(before == 0)[0])]
            raise ConfigError(f"dwa: task {bad!r} has mean loss 0 in epoch {epoch - 2}, so its loss ratio is undefined")
        return len(self.tasks) * torch.softmax(last / before / self.config.temperature, 0)

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.weights(step.epoch).to(losses)
        return (weights * losses).sum(), weights

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["history"] = {e: v.clone() for e, v in self.history.items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = {int(e): v.clone() for e, v in state["history"].items()}
