"""The strategy's part of a training step, one implementation for ``mtlx run``'s engine and ``mtlx.MTL``.

Both loops build a :class:`~mtlx.interfaces.StepContext` their own way (the engine from its batches, a user's
loop from the losses it hands over) and then call the same :class:`StepDriver` methods: the strategy's
``backward`` with the per-task-gradient method that sticks after a two-stage fallback, the gradient sync,
the owned optimiser step and ``after_step``, the epoch's loss sums and the mean losses ``on_epoch_end`` gets.
So "``mtlx.MTL`` gives the ``.grad`` of ``mtlx run``" holds by construction: a fix here reaches both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import torch

from .. import distributed
from ..interfaces import MTOStrategy, StepContext, StepResult
from ..interfaces.strategy import take_optimizer_step
from ..phases import STRATEGY, phase
from .state import State

__all__ = ["StepDriver"]


def _unguarded(where: str) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


@attrs.define(eq=False)
class StepDriver:
    """Runs the strategy's side of each step on the loop's :class:`State` (its epoch and loss sums).

    Args:
        strategy: the MTO strategy.
        state: the loop's counters: ``epoch``, ``epoch_iteration`` (the steps the epoch's mean divides by; the
            loop counts them) and ``epoch_loss_sums`` (kept here).
        tasks: the task names, in order.
        synced: the parameters whose gradients are averaged over processes after ``backward`` (the global
            batch's gradients, as a DDP wrapper would give; a no-op on one process).
        grad_method: how per-task gradients are computed (``auto``, ``loop``, ``two-stage``); a two-stage
            fallback found in one step sticks, so it is not retried every step.
        guard: ``guard(where)`` wraps each call of the strategy (the engine's names the strategy when it raises).
    """

    strategy: MTOStrategy
    state: State
    tasks: tuple[str, ...] = attrs.field(converter=tuple)
    synced: Callable[[], Iterable[torch.nn.Parameter]]
    grad_method: str = "auto"
    guard: Callable[[str], contextlib.AbstractContextManager[Any]] = _unguarded

    def backward(self, ctx: StepContext) -> StepResult:
        """The strategy's ``backward`` at the sticky ``grad_method`` (set on ``ctx``), then the gradient sync."""
        ctx.grad_method = self.grad_method
        with phase(STRATEGY), self.guard(f"in backward at step {ctx.iteration + 1}"):
            result = self.strategy.backward(ctx)
        self.grad_method = ctx.grad_method
        distributed.sync_gradients(self.synced())
        return result

    def finish(self, ctx: StepContext, optimizer: torch.optim.Optimizer | None = None) -> None:
        """After the optimiser step: a strategy that owns the step (MTAdam) takes it on ``optimizer`` in its
        place, then every strategy's ``after_step`` (FAMO's weight update)."""
        if self.strategy.owns_optimizer_step:
            with self.guard(f"in optimizer_step at step {ctx.iteration + 1}"):
                take_optimizer_step(self.strategy, ctx, optimizer)
        with self.guard(f"in after_step at step {ctx.iteration + 1}"):
            self.strategy.after_step(ctx)

    def record(self, losses: Mapping[str, float]) -> None:
        """Add a step's loss values to the epoch's sums."""
        sums = self.state.epoch_loss_sums
        for task, value in losses.items():
            sums[task] = sums.get(task, 0.0) + value

    def start_epoch(self) -> None:
        """Zero the epoch's loss sums."""
        self.state.epoch_loss_sums = dict.fromkeys(self.tasks, 0.0)

    def end_epoch(self, mean_losses: Mapping[str, float] | None = None) -> Mapping[str, float]:
        """The strategy's ``on_epoch_end`` with the epoch's mean losses (``mean_losses`` when given); returns them."""
        means = self.state.epoch_mean_losses() if mean_losses is None else mean_losses
        with self.guard(f"in on_epoch_end of epoch {self.state.epoch + 1}"):
            self.strategy.on_epoch_end(self.state.epoch, means)
        return means

    def next_epoch(self) -> None:
        """Count the epoch as done: the next one starts at its step 0."""
        self.state.epoch += 1
        self.state.epoch_iteration = 0
