"""Guard for the loss weightings that take logs or ratios of the task losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtlx import ConfigError, StepContext

__all__ = ["require_positive"]


def require_positive(losses: torch.Tensor, tasks: Sequence[str], step: StepContext, method: str) -> None:
    """Raise a ConfigError naming the task and step when a loss is not > 0."""
    values = losses.detach()
    if bool((values > 0).all()):
        return
    bad = int(torch.nonzero(values <= 0)[0])
    raise ConfigError(
        f"{method} needs positive task losses, but task {tasks[bad]!r} has loss {float(values[bad]):.4g} at step "
        f"{step.iteration} (epoch {step.epoch}); a log loss transform (train.loss_transform=log) makes losses "
        "negative: use train.loss_transform=none with this strategy"
    )
