"""The engine's one documented state object."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["State"]


@attrs.define
class State:
    """What handlers may read (and a few fields they may set).

    Attributes:
        epoch: 0-based index of the current epoch (= epochs completed once it ends).
        iteration: optimiser steps taken so far over the whole run.
        epoch_iteration: batches consumed in the current epoch.
        max_epochs / max_steps: the stopping budget (``max_steps`` None = epochs only).
        batch: the current batch (inputs, targets) on the device.
        losses: last step's per-task losses (floats, after the loss transform).
        weights / diagnostics: what the strategy returned for the last step.
        epoch_loss_sums: running per-task loss sums of the current epoch.
        metrics: latest evaluation per split: ``{split: {task: {metric: value}}}``.
        summary: latest aggregates per split (``delta_m_task``, ``delta_m_metric``).
        details: latest per-task breakdowns per split (``Meter.details``, e.g. per-class IoU).
        last_eval: the name the latest evaluation is stored under in ``metrics`` (a split, or ``test@best``).
        best: ``{"epoch", "iteration", "score", "metrics"}`` of the best validation so far; an evaluation
            set a new best when ``best["iteration"] == iteration``.
        should_stop: set by a handler to end the run after the current step.

    A handler keeps its own data on itself (and in its ``state_dict``), never here.
    """

    max_epochs: int
    max_steps: int | None = None
    epoch: int = 0
    iteration: int = 0
    epoch_iteration: int = 0
    batch: Any = None
    losses: dict[str, float] = attrs.field(factory=dict)
    weights: dict[str, float] | None = None
    diagnostics: dict[str, float] = attrs.field(factory=dict)
    epoch_loss_sums: dict[str, float] = attrs.field(factory=dict)
    metrics: dict[str, dict[str, dict[str, float]]] = attrs.field(factory=dict)
    summary: dict[str, dict[str, float]] = attrs.field(factory=dict)
    details: dict[str, dict[str, dict[str, Any]]] = attrs.field(factory=dict)
    last_eval: str | None = None
    best: dict[str, Any] | None = None
    should_stop: bool = False

    _PERSISTENT = ("epoch", "iteration", "epoch_iteration", "epoch_loss_sums", "metrics", "summary", "details", "best")

    @property
    def steps_done(self) -> bool:
        """Whether the run has taken its ``max_steps`` optimiser steps (never without a step budget)."""
        return self.max_steps is not None and self.iteration >= self.max_steps

    def epoch_mean_losses(self) -> dict[str, float]:
        """Each task's mean loss over the current epoch's steps (the strategy's ``on_epoch_end``, the logs)."""
        return {t: v / max(self.epoch_iteration, 1) for t, v in self.epoch_loss_sums.items()}

    def state_dict(self) -> dict[str, Any]:
        """The fields a resumed run needs (everything but the batch, the stop flag and ``last_eval``)."""
        return {name: getattr(self, name) for name in self._PERSISTENT}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._PERSISTENT:
            setattr(self, name, state.get(name, {}) if name == "details" else state[name])  # older checkpoints lack it
