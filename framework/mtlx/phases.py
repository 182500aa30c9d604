"""Profiler labels of a training step, so that ``torch.profiler`` shows where a step's time goes.

The engine labels its three top-level phases, the core labels the work done
on a strategy's behalf inside ``strategy.backward``::

    mtlx/forward         forward pass and task losses
    mtlx/strategy        strategy.backward, which contains
        mtlx/per-task-grads  per-task gradients (mtlx.gradients.per_task_grads, StepContext.shared_grads/rep_grads)
        mtlx/backward        StepContext's backward passes and the write of the shared gradient
        (the rest)           the strategy's own work: aggregation, weighting, solvers
    mtlx/optimizer       optimiser step (with clipping/AMP unscaling) and strategy.after_step

A label never nests in itself (:func:`phase` skips the inner one, e.g.
``backward_heads`` calling ``backward``), and per-task-grads and backward are
disjoint, so summing the regions of one name never counts time twice.
Without a running profiler a label costs a few microseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from torch.profiler import record_function

__all__ = ["BACKWARD", "FORWARD", "OPTIMIZER", "PER_TASK_GRADS", "STRATEGY", "phase"]

FORWARD = "mtlx/forward"
STRATEGY = "mtlx/strategy"
PER_TASK_GRADS = "mtlx/per-task-grads"
BACKWARD = "mtlx/backward"
OPTIMIZER = "mtlx/optimizer"

_open: ContextVar[frozenset[str]] = ContextVar("mtlx_open_phases", default=frozenset())


@contextmanager
def phase(name: str) -> Iterator[None]:
    """``record_function(name)``, unless a region of the same name is already open (no double counting)."""
    open_phases = _open.get()
    if name in open_phases:
        yield
        return
    token = _open.set(open_phases | {name})
    try:
        with record_function(name):
            yield
    finally:
        _open.reset(token)
