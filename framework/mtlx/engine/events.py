"""The points in a run where the engine calls its handlers."""

from __future__ import annotations

import enum

__all__ = ["Events"]


class Events(enum.Enum):
    """Firing points, in order within a run; each value names the :class:`~mtlx.engine.Handler` method called."""

    STARTED = "started"
    EPOCH_STARTED = "epoch_started"
    ITERATION_COMPLETED = "iteration_completed"
    #: the epoch's last step is done; ``state.epoch`` is still the epoch's index (evaluation, logging, LR step)
    EPOCH_COMPLETED = "epoch_completed"
    #: after EPOCH_COMPLETED, once the counter moved on: the state is that of the next epoch's start (checkpoints)
    EPOCH_ADVANCED = "epoch_advanced"
    EVAL_COMPLETED = "eval_completed"
    COMPLETED = "completed"
    EXCEPTION_RAISED = "exception_raised"
