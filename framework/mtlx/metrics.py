"""The meters every kind of task needs (accuracy, MAE), accumulated over a whole split, and Delta_m.

The meters of dense tasks (mIoU, depth and normal errors) are the mtlx-dense library's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch

from .interfaces import Meter

__all__ = ["AccuracyMeter", "MAEMeter", "delta_m"]


class _RatioMeter(Meter):
    """``metric`` = a sum over the split / a count (``counts``, float64): NaN over nothing."""

    metric: ClassVar[str]

    def reset(self) -> None:
        self.counts = torch.zeros(2, dtype=torch.float64)

    def _add(self, total: torch.Tensor, count: int | torch.Tensor) -> None:
        self.counts += torch.tensor([float(total), float(count)], dtype=torch.float64)

    def merge(self, other: Meter) -> None:
        self.counts += other.counts

    def compute(self) -> dict[str, float]:
        return {self.metric: float(self.counts[0] / self.counts[1]) if self.counts[1] > 0 else math.nan}


class AccuracyMeter(_RatioMeter):
    """Top-1 accuracy over the split of ``[B, K, ...]`` class logits, per sample or per element.

    Targets equal to ``ignore_index`` do not count, so one meter serves image labels and labelled
    pixels alike (a per-pixel task's ignore label is -1, as :func:`mtlx.losses.classification_loss`'s).
    """

    metric = "acc"
    higher_is_better: ClassVar[Mapping[str, bool]] = {"acc": True}

    def __init__(self, ignore_index: int = -1) -> None:
        self.ignore_index = ignore_index
        self.reset()

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        target = target.cpu()
        valid = target != self.ignore_index
        self._add(((prediction.argmax(1).cpu() == target) & valid).sum(), valid.sum())


class MAEMeter(_RatioMeter):
    """Mean absolute error of a regression output, optionally de-standardised (``scale``)."""

    metric = "mae"
    higher_is_better: ClassVar[Mapping[str, bool]] = {"mae": False}

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.reset()

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        err = (prediction.detach().double().reshape(target.shape) - target.double()).abs().cpu() * self.scale
        self._add(err.sum(), err.numel())


def delta_m(
    results: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    higher_is_better: Mapping[str, Mapping[str, bool]],
    convention: str = "task",
) -> float:
    """Relative multi-task improvement over single-task baselines, in percent.

    Both conventions are signed so that **positive is better**:

    * ``"task"``: LibMTL's Δp; relative changes are averaged within each task
      first, then over tasks (every task weighs the same).
    * ``"metric"``: every metric weighs the same (flat average). Nash-MTL,
      CAGrad and FAMO publish the negative of this value as "Δm" (lower is better).

    Only the metrics present in ``baseline`` count; each must be in ``results``.
    """
    if convention not in ("task", "metric"):
        raise ValueError(f"convention must be 'task' or 'metric', got {convention!r}")
    per_task: list[list[float]] = []
    for task, base_metrics in baseline.items():
        if task not in results:
            raise KeyError(f"delta_m: task {task!r} of the baseline is missing from the results")
        changes = []
        for metric, base in base_metrics.items():
            if metric not in results[task]:
                raise KeyError(f"delta_m: metric {task}.{metric} of the baseline is missing from the results")
            sign = 1.0 if higher_is_better[task][metric] else -1.0
            changes.append(sign * (results[task][metric] - base) / base)
        per_task.append(changes)
    if not per_task:
        raise ValueError("delta_m: the baseline has no metrics")
    if convention == "task":
        value = sum(sum(c) / len(c) for c in per_task) / len(per_task)
    else:
        flat = [x for c in per_task for x in c]
        value = sum(flat) / len(flat)
    return 100.0 * value
