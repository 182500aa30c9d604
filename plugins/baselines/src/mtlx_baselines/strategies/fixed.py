"""Fixed weights: ``Σ_t w_t L_t`` with one user-given weight per task (torchjd's ``Constant``).

For comparisons against hand-tuned weights, which ``ew`` cannot take. Every
task needs a weight and no other name is allowed, so a typo or a task added
to the dataset cannot silently fall back to some default; weights must be
finite and ``>= 0`` and not all 0. As a :class:`~mtlx.LossWeighting` it costs
one backward (``Σ_t w_t ∇L_t`` is torchjd's ``Constant(w)`` applied to the
Jacobian) and composes with Rep-MTL (``-o strategy.base=fixed``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from mtlx import ConfigError, LossWeighting, StepContext
from mtlx.errors import did_you_mean

__all__ = ["FixedWeights", "parse_weights"]

EXAMPLE = "seg:1,depth:0.5"


def parse_weights(value: Any) -> dict[str, float] | None:
    """``"seg:1,depth:0.5"`` or ``{"seg": 1, "depth": 0.5}`` -> ``{task: weight}``; an error naming what is wrong."""
    if value is None:
        return None
    if isinstance(value, str):
        pairs = [_pair(part) for part in value.split(",")] if value.strip() else []
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise TypeError(f"weights must look like {EXAMPLE} (or a TOML table), got {value!r}")
    weights: dict[str, float] = {}
    for task, weight in pairs:
        if task in weights:
            raise ValueError(f"weights name task {task!r} twice")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"weight of task {task!r} is {weight!r}, not a number")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of task {task!r} is {weight}: weights must be finite and >= 0")
        weights[str(task)] = float(weight)
    if weights and not any(weights.values()):
        raise ValueError("every weight is 0: nothing would be trained")
    return weights


def _pair(part: str) -> tuple[str, float]:
    task, sep, number = part.rpartition(":")
    if not sep or not task.strip():
        raise ValueError(f"{part.strip()!r} is not TASK:WEIGHT (weights look like {EXAMPLE})")
    try:
        return task.strip(), float(number)
    except ValueError:
        raise ValueError(f"weight of task {task.strip()!r} is {number.strip()!r}, not a number") from None


class FixedWeights(LossWeighting):
    """Fixed weights (torchjd's Constant): ``Σ_t w_t L_t`` with a user-given weight for every task."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            weights: required: a finite weight >= 0 for every task and no other name, ``TASK:W,...``
                (``-o strategy.weights=seg:1,depth:0.5``) or a TOML table (``weights = {seg = 1, depth = 0.5}``)
        """

        weights: str | Mapping[str, float] | None = attrs.field(default=None, converter=parse_weights)

    @classmethod
    def example_options(cls, tasks: Sequence[str]) -> dict[str, Any]:
        return {"weights": dict.fromkeys(tasks, 1.0)}

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        given = config.weights or {}
        listed = ", ".join(self.tasks)
        if not given:
            example = ",".join(f"{t}:1" for t in self.tasks)
            raise ConfigError(f"strategy 'fixed' needs a weight for every task: -o strategy.weights={example} "
                              f"(tasks: {listed})")
        unknown = [t for t in given if t not in self.tasks]
        if unknown:
            hint = did_you_mean(unknown[0], self.tasks)
            raise ConfigError(f"strategy 'fixed': weights for unknown task(s) {unknown}{hint} (tasks: {listed})")
        missing = [t for t in self.tasks if t not in given]
        if missing:
            raise ConfigError(
                f"strategy 'fixed': no weight for task(s) {missing}: give every task one (tasks: {listed})"
            )
        self.weights = torch.tensor([given[t] for t in self.tasks], dtype=torch.float64)

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.weights.to(losses)
        return (weights * losses).sum(), weights
