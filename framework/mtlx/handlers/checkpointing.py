"""Periodic atomic checkpoints: ``last.pt`` (resumable) and ``best.pt`` (model selection)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..checkpoint import save_checkpoint
from ..engine import Engine, Handler

__all__ = ["CheckpointHandler"]


class CheckpointHandler(Handler):
    """Writes ``<dir>/last.pt`` after every epoch (EPOCH_ADVANCED), every ``every_steps`` steps and when
    the run stops early (step budget, or ``should_stop`` set by a signal), and
    ``<dir>/best.pt`` after an evaluation that improved the selection score.

    ``meta`` returns what is stored beside the engine state (config, versions).
    """

    def __init__(self, directory: str | Path, meta: Callable[[], dict[str, Any]], every_steps: int | None = None):
        self.directory = Path(directory)
        self.meta = meta
        self.every_steps = every_steps

    def save(self, engine: Engine, name: str) -> None:
        """Write ``<directory>/<name>`` (``last.pt`` or ``best.pt``)."""
        save_checkpoint(self.directory / name, {**self.meta(), "engine": engine.state_dict()})

    def iteration_completed(self, engine: Engine) -> None:
        s = engine.state
        periodic = self.every_steps is not None and s.iteration % self.every_steps == 0
        budget_end = s.max_steps is not None and s.iteration >= s.max_steps
        if periodic or budget_end or s.should_stop:
            self.save(engine, "last.pt")

    def epoch_advanced(self, engine: Engine) -> None:
        # the epoch counter has moved on: the saved state resumes at the start of the next epoch
        state = engine.state
        self.save(engine, "last.pt")
        if state.best is not None and state.best["iteration"] == state.iteration:  # this epoch's evaluation improved
            self.save(engine, "best.pt")
