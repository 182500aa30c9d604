"""Guard for the loss weightings that take logs or ratios of the task losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtlx import ConfigError, StepContext

__all__ = ["require_positive"]


def require_positive(
    losses: torch.Tensor, tasks: Sequence[str], step: StepContext, method: str, *, allow_zero: bool = False
) -> None:
    """Raise a ConfigError naming the task and step when a loss is negative (or 0 unless ``allow_zero``).

    ``allow_zero`` is for methods whose formulas carry an epsilon for exactly that case (FAMO, STCH).
    """
    values = losses.detach()
    valid = values >= 0 if allow_zero else values > 0
    if bool(valid.all()):
        return
    bad = int(torch.nonzero(~valid)[0])
    kind = "non-negative" if allow_zero else "positive"
    raise ConfigError(
        f"{method} needs {kind} task losses, but task {tasks[bad]!r} has loss {float(values[bad]):.4g} at step "
        f"{step.iteration} (epoch {step.epoch}); a log loss transform (train.loss_transform=log) makes losses "
        "negative: use train.loss_transform=none with this strategy"
    )
