"""Evaluation over a whole split, and its Delta_m against the dataset's single-task baseline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from .. import distributed
from ..errors import ConfigError
from ..interfaces import Meter, MultiTaskModel, TaskSpec
from ..metrics import delta_m
from .step import forward, to_device

__all__ = ["check_mergeable", "measure", "merge_across_processes", "summarize"]


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

    Under a process group each process reads its shard of the split (:func:`mtlx.distributed.batch_shard`) and
    the meters are merged (:func:`merge_across_processes`): every process returns the whole split's meters.
    ``guard(kind, where)`` (:meth:`mtlx.engine.Engine.guard`) wraps the model's forward (``model``) and the
    meters' updates and merge (``meter``), so that an error names the component that raised.
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
    with guard("meter", "merging its statistics across processes"):
        return merge_across_processes(meters)


def merge_across_processes(meters: Mapping[str, Meter]) -> dict[str, Meter]:
    """The meters of every process merged (:meth:`Meter.merge`), in rank order, on every process (one
    all-gather of the meters); the meters themselves without a process group."""
    if not distributed.is_distributed():
        return dict(meters)
    shards = distributed.all_gather_to_all(dict(meters))
    merged = shards[0]
    for shard in shards[1:]:
        for task, meter in merged.items():
            meter.merge(shard[task])
    return merged


def check_mergeable(tasks: Mapping[str, TaskSpec]) -> None:
    """Refuse (:class:`ConfigError`) a task whose meter cannot merge, before a sharded evaluation needs it."""
    for name, spec in tasks.items():
        meter = spec.meter()
        if type(meter).merge is Meter.merge:
            raise ConfigError(
                f"the meter of task {name!r} ({type(meter).__module__}.{type(meter).__qualname__}) does not "
                "implement Meter.merge, which data-parallel evaluation needs to add up the processes' shards; "
                "run it in one process"
            )


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
