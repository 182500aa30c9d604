"""Handler base class: the one way to attach behaviour to the engine (detectron2's ``HookBase``).

Override any of the no-op methods, each named after an :class:`Events`
member; ``engine.attach(handler)`` registers the handler and the engine calls
its methods in attach order. A handler that acts every N steps checks
``engine.state.iteration`` itself (as detectron2's ``PeriodicWriter`` does).
A handler that keeps state across a resume implements
``state_dict``/``load_state_dict``; the engine stores it under the handler's
full name (``module.QualName``), so two plugins' handlers of one class name
keep their own state. The loop, as pseudo-code::

    started()
    for epoch:
        epoch_started()
        for batch:
            [forward, strategy.backward, optimizer.step]
            iteration_completed()
        epoch_completed()          # evaluation handlers fire eval_completed()
        [state.epoch += 1]
        epoch_advanced()           # the state resumes at the next epoch: checkpoint here
    completed()                    # or exception_raised() on error, which sys.exception() returns
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Handler"]


class Handler:
    """A group of event callbacks sharing state. Each method receives the engine.

    Callbacks must be cheap on ``iteration_completed``, which runs every step.
    """

    def started(self, engine: Engine) -> None: ...
    def epoch_started(self, engine: Engine) -> None: ...
    def iteration_completed(self, engine: Engine) -> None: ...
    def epoch_completed(self, engine: Engine) -> None: ...
    def epoch_advanced(self, engine: Engine) -> None: ...
    def eval_completed(self, engine: Engine) -> None: ...
    def completed(self, engine: Engine) -> None: ...
    def exception_raised(self, engine: Engine) -> None: ...

    @property
    def key(self) -> str:
        """Name under which the handler's state is checkpointed: its class's module and qualified name."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def saved_state(self, states: Mapping[str, Any]) -> Any | None:
        """This handler's entry of a checkpoint's handler states (None: none saved): under :attr:`key`, or under
        the bare class name that checkpoints written before keys were full names used."""
        return states.get(self.key, states.get(type(self).__qualname__))

    def state_dict(self) -> dict[str, Any] | None:
        """Return state to checkpoint, or None for a stateless handler."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
