"""One line per epoch (train losses, validation metrics, Delta_m, time): readable in a terminal, a log file or a pipe."""

from __future__ import annotations

import time

from rich.console import Console

from ..engine import Engine, Handler
from .evaluation import evaluation_due

__all__ = ["EpochLog"]


class EpochLog(Handler):
    """Prints ``epoch 3/10  train seg=0.213 depth=0.180  val seg.miou=0.482 ...  Δm_task -12.31%  34.1s``.

    Attach after :class:`~mtlx.handlers.EvaluationHandler` so the epoch's evaluation is in the line (an
    epoch without one shows the train losses only). The line is printed whole, never wrapped or cut,
    whatever the width of the output.
    """

    def __init__(self, split: str = "val", eval_every: int = 1, console: Console | None = None):
        self.split = split
        self.eval_every = eval_every
        self.console = console or Console(stderr=True, soft_wrap=True)
        self._started = time.perf_counter()

    def epoch_started(self, engine: Engine) -> None:
        self._started = time.perf_counter()

    def epoch_completed(self, engine: Engine) -> None:
        s = engine.state
        parts = [f"epoch {s.epoch + 1}/{s.max_epochs}"]
        parts.append("train " + " ".join(f"{t}={v:.4g}" for t, v in s.epoch_mean_losses().items()))
        metrics = s.metrics.get(self.split)
        if metrics is not None and evaluation_due(s, self.eval_every):  # evaluated this epoch
            parts.append(f"{self.split} " + " ".join(
                f"{t}.{m}={v:.4g}" for t, values in metrics.items() for m, v in values.items() if v is not None
            ))
            summary = s.summary.get(self.split, {})
            if "delta_m_task" in summary:
                parts.append(f"Δm_task {summary['delta_m_task']:+.2f}%")
        parts.append(f"{time.perf_counter() - self._started:.1f}s")
        self.console.print("  ".join(parts), markup=False, highlight=False, crop=False, overflow="ignore")
