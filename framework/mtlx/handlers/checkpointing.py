"""Periodic atomic checkpoints: ``last.pt`` (resumable) and ``best.pt`` (model selection)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import distributed
from ..checkpoint import save_checkpoint
from ..engine import Engine, Handler

__all__ = ["CheckpointHandler"]


class CheckpointHandler(Handler):
    """Writes ``<dir>/last.pt`` after every epoch (EPOCH_ADVANCED), every ``every_steps`` steps and when
    the loop ends anywhere else (COMPLETED: the step budget, or ``should_stop`` set by a signal, which may
    land after this handler saw the step), and ``<dir>/best.pt`` after an evaluation that improved the
    selection score. Under data parallelism every process runs it and rank 0 writes: ``last.pt`` holds each
    rank's :meth:`~mtlx.engine.Engine.rank_state` under ``ranks`` (``best.pt``, written by rank 0 alone, none).

    ``meta`` returns what is stored beside the engine state (config, versions, run id). A model with a
    NaN/Inf parameter or buffer is never written (:meth:`~mtlx.engine.Engine.verify_finite` raises first).
    """

    def __init__(self, directory: str | Path, meta: Callable[[], dict[str, Any]], every_steps: int | None = None):
        self.directory = Path(directory)
        self.meta = meta
        self.every_steps = every_steps
        self._last_saved: tuple[int, int] | None = None  # (epoch, iteration) of the state in last.pt

    def save(self, engine: Engine, name: str) -> None:
        """Write ``<directory>/<name>`` (``last.pt`` or ``best.pt``)."""
        engine.verify_finite(f"writing {name}")
        last = name == "last.pt"  # every process saves last.pt at the same steps: a collective, each rank's state
        ranks = distributed.gather_to_main(engine.rank_state()) if last and distributed.is_distributed() else None
        if distributed.is_main_process():
            save_checkpoint(self.directory / name, {**self.meta(), "engine": engine.state_dict(), "ranks": ranks})
        if last:
            self._last_saved = (engine.state.epoch, engine.state.iteration)

    def iteration_completed(self, engine: Engine) -> None:
        s = engine.state
        if self.every_steps is not None and s.iteration % self.every_steps == 0:
            self.save(engine, "last.pt")

    def completed(self, engine: Engine) -> None:
        if self._last_saved != (engine.state.epoch, engine.state.iteration):
            self.save(engine, "last.pt")

    def epoch_advanced(self, engine: Engine) -> None:
        # the epoch counter has moved on: the saved state resumes at the start of the next epoch
        state = engine.state
        self.save(engine, "last.pt")
        if state.best is not None and state.best["iteration"] == state.iteration:  # this epoch's evaluation improved
            self.save(engine, "best.pt")
