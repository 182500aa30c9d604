"""Handler base class (detectron2's ``HookBase`` over Ignite-style events).

Override any of the no-op methods, each named after an :class:`Events`
member; ``engine.attach(handler)`` connects the overridden ones. A handler
that keeps state across a resume implements ``state_dict``/``load_state_dict``;
the engine stores it under the handler's qualified class name. The loop, as
pseudo-code::

    started()
    for epoch:
        epoch_started()
        for batch:
            iteration_started(); [forward] after_forward(); [strategy.backward]
            after_backward(); [optimizer.step] after_optimizer_step(); iteration_completed()
        epoch_completed()          # evaluation handlers fire eval_completed()
    completed()                    # or exception_raised() on error
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Handler"]


class Handler:
    """A group of event callbacks sharing state. Each method receives the engine.

    Class attribute ``every`` maps method names to an ``every=`` filter, e.g.
    ``every = {"iteration_completed": 10}``. Callbacks must be cheap on
    per-iteration events.
    """

    every: dict[str, int] = {}

    def started(self, engine: Engine) -> None: ...
    def epoch_started(self, engine: Engine) -> None: ...
    def iteration_started(self, engine: Engine) -> None: ...
    def after_forward(self, engine: Engine) -> None: ...
    def after_backward(self, engine: Engine) -> None: ...
    def after_optimizer_step(self, engine: Engine) -> None: ...
    def iteration_completed(self, engine: Engine) -> None: ...
    def epoch_completed(self, engine: Engine) -> None: ...
    def eval_completed(self, engine: Engine) -> None: ...
    def completed(self, engine: Engine) -> None: ...
    def exception_raised(self, engine: Engine) -> None: ...

    @property
    def key(self) -> str:
        """Name under which the handler's state is checkpointed."""
        return type(self).__qualname__

    def state_dict(self) -> dict[str, Any] | None:
        """Return state to checkpoint, or None for a stateless handler."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
