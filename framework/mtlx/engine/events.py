"""Engine events and their filters (Ignite's ``Events``, simplified).

``Events.ITERATION_COMPLETED(every=10)`` fires on every tenth optimiser step,
``Events.EPOCH_COMPLETED(once=3)`` only after the third epoch; a custom
predicate ``filter=lambda engine, count: ...`` decides on its own. Filters are
checked when they are created, not mid-run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["EPOCH_EVENTS", "ITERATION_EVENTS", "EventFilter", "Events"]


class Events(enum.Enum):
    """Points in the run where handlers are called, in firing order within a run."""

    STARTED = "started"
    EPOCH_STARTED = "epoch_started"
    ITERATION_STARTED = "iteration_started"
    AFTER_FORWARD = "after_forward"
    AFTER_BACKWARD = "after_backward"
    AFTER_OPTIMIZER_STEP = "after_optimizer_step"
    ITERATION_COMPLETED = "iteration_completed"
    EPOCH_COMPLETED = "epoch_completed"
    EVAL_COMPLETED = "eval_completed"
    COMPLETED = "completed"
    EXCEPTION_RAISED = "exception_raised"

    def __call__(
        self,
        *,
        every: int | None = None,
        once: int | None = None,
        filter: Callable[[Engine, int], bool] | None = None,
    ) -> EventFilter:
        """This event restricted to some occurrences (exactly one of ``every``, ``once``, ``filter``)."""
        given = [x is not None for x in (every, once, filter)]
        if sum(given) != 1:
            raise ValueError(f"{self.name}(...) takes exactly one of every=, once=, filter=")
        for name, value in (("every", every), ("once", once)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"argument {name} of {self.name} must be a positive integer, got {value!r}")
        return EventFilter(self, every=every, once=once, predicate=filter)


ITERATION_EVENTS = frozenset(
    {
        Events.ITERATION_STARTED,
        Events.AFTER_FORWARD,
        Events.AFTER_BACKWARD,
        Events.AFTER_OPTIMIZER_STEP,
        Events.ITERATION_COMPLETED,
    }
)
EPOCH_EVENTS = frozenset({Events.EPOCH_STARTED, Events.EPOCH_COMPLETED})


@attrs.frozen
class EventFilter:
    """An event plus the rule selecting which of its occurrences fire.

    The occurrence count is the 1-based optimiser step for iteration events,
    the 1-based epoch for epoch events, and the number of firings otherwise.
    """

    event: Events
    every: int | None = None
    once: int | None = None
    predicate: Callable[[Any, int], bool] | None = None

    def matches(self, engine: Any, count: int) -> bool:
        if self.every is not None:
            return count % self.every == 0
        if self.once is not None:
            return count == self.once
        assert self.predicate is not None
        return bool(self.predicate(engine, count))
