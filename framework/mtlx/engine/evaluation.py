"""Evaluation over a whole split, and its Delta_m against the dataset's single-task baseline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ..interfaces import Meter, MultiTaskModel, TaskSpec
from ..metrics import delta_m
from .step import forward, to_device

__all__ = ["measure", "summarize"]


@torch.no_grad()
def measure(
    model: MultiTaskModel,
    loader: Iterable[Any],
    tasks: Mapping[str, TaskSpec],
    *,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    multi_input: bool = False,
    guard: Callable[[str, str], contextlib.AbstractContextManager[Any]] | None = None,
) -> dict[str, Meter]:
    """Every task's meter filled over ``loader`` in eval mode (the model's mode is restored after).

    ``guard(kind, where)`` (:meth:`mtlx.engine.Engine.guard`) wraps the model's forward (``model``) and the
    meters' updates (``meter``), so that an error names the component that raised.
    """
    guard = guard or (lambda kind, where: contextlib.nullcontext())
    meters = {t: spec.meter() for t, spec in tasks.items()}
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            inputs, targets = to_device(batch, device)
            with autocast(), guard("model", "in an evaluation forward"):
                preds, _ = forward(model, inputs, multi_input=multi_input)
            with guard("meter", "updating its metrics"):
                for t in preds:  # multi-input evaluation: a task whose data ran out is absent
                    meters[t].update(preds[t].float(), targets[t])
    finally:
        model.train(was_training)
    return meters


def summarize(
    metrics: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]] | None,
    tasks: Mapping[str, TaskSpec],
) -> dict[str, float]:
    """Delta_m in both conventions against the baseline (tasks present in both); empty without one."""
    reference = {t: dict(baseline[t]) for t in metrics if baseline and t in baseline}
    if not reference:
        return {}
    directions = {t: tasks[t].higher_is_better for t in reference}
    return {
        "delta_m_task": delta_m(metrics, reference, directions, "task"),
        "delta_m_metric": delta_m(metrics, reference, directions, "metric"),
    }
