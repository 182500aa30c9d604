"""A rich progress bar over training steps, with the latest losses."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..engine import Engine, Handler

__all__ = ["ProgressBar"]


class ProgressBar(Handler):
    """One bar for the whole run (steps), with the latest losses.

    Schedule: STARTED, ITERATION_COMPLETED, COMPLETED / EXCEPTION_RAISED.
    """

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None

    def started(self, engine: Engine) -> None:
        s = engine.state
        total = s.max_epochs * engine.steps_per_epoch
        if s.max_steps is not None:
            total = min(total, s.max_steps)
        self._progress = Progress(
            TextColumn("[bold]train[/] epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=s.iteration, epoch=s.epoch, losses="")

    def iteration_completed(self, engine: Engine) -> None:
        s = engine.state
        if self._progress is None:
            return
        losses = " ".join(f"{t}={v:.3f}" for t, v in s.losses.items())
        self._progress.update(self._task, completed=s.iteration, epoch=s.epoch, losses=losses)

    def completed(self, engine: Engine) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    exception_raised = completed
