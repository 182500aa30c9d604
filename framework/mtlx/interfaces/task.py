"""What a task is: its name, kind, output size, loss and metrics.

A :class:`TaskSpec` is data, not behaviour: datasets declare them, heads read
``out_channels``/``dense`` to size themselves, the engine reads ``loss`` and
``meter``. Metric directions live on the meter class, read through
:attr:`TaskSpec.higher_is_better`, so that Delta_m never guesses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
import torch

__all__ = ["Meter", "TaskSpec"]


class Meter(ABC):
    """Accumulates one task's metrics over a whole split.

    Meters hold sufficient statistics (a confusion matrix, sums, or all
    errors when a true median is needed) so the result does not depend on the
    batch size. ``higher_is_better`` gives the direction of every metric
    that ``compute`` returns (Delta_m and model selection read it).
    """

    higher_is_better: ClassVar[Mapping[str, bool]]

    @abstractmethod
    def reset(self) -> None:
        """Forget everything accumulated so far."""

    @abstractmethod
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch (raw head output and the dataset's target)."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Return ``{metric: value}`` over everything added since ``reset``."""

    def merge(self, other: Meter) -> None:
        """Add the statistics of ``other`` (a meter of the same task, filled on other batches) to this one's.

        Afterwards :meth:`compute` gives what one meter fed both meters' batches would give: data-parallel
        evaluation fills one meter per process on that process's shard of the split and merges them
        (:func:`mtlx.engine.evaluation.measure`). Meters that keep per-batch statistics merge them as
        such: the shards are whole batches of the one-process evaluation. ``mtlx run --nproc N`` refuses a
        meter that does not implement it.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement Meter.merge")

    def details(self) -> dict[str, Any]:
        """Breakdowns reported next to the metrics (results.json), e.g. per-class IoU.

        Never used for Delta_m or model selection, so they need no direction;
        JSON-serialisable values (lists of floats, NaN allowed).
        """
        return {}


@attrs.frozen(kw_only=True)
class TaskSpec:
    """One task of a dataset.

    Attributes:
        name: unique task name within the dataset (``"seg"``, ``"depth"``).
        kind: what the first-party heads and metrics know (``segmentation``, ``depth``, ``normal``,
            ``classification``, ``regression``, ``edge``, ``saliency``) or a plugin-defined kind.
        out_channels: channels (dense) or outputs (image-level) of the head.
        dense: True when the prediction is per pixel and must match the input size.
        loss: ``(prediction, target) -> scalar`` mean loss over valid elements.
        meter: factory of a fresh :class:`Meter` for this task.
    """

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    kind: str
    out_channels: int = attrs.field(validator=attrs.validators.ge(1))
    dense: bool
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    meter: Callable[[], Meter]

    @property
    def higher_is_better(self) -> dict[str, bool]:
        """Every metric's direction, from the meter's class (the one place Delta_m and selection read it)."""
        return dict(type(self.meter()).higher_is_better)
