"""Metrics logging: one JSON object per line in ``metrics.jsonl`` (and TensorBoard if asked)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..checkpoint import append_line, write_error
from ..engine import Engine, Handler
from ..jsonutil import dumps

__all__ = ["JSONLLogger"]


class JSONLLogger(Handler):
    """Appends train records every ``log_every`` steps and every evaluation to ``path``.

    Schedule: ITERATION_COMPLETED every ``log_every`` steps, EPOCH_COMPLETED, EVAL_COMPLETED.
    Records carry ``time`` (seconds of training, continued across resumes), ``event`` (``train``,
    ``epoch``, ``eval``), ``epoch`` and ``step``. With ``tensorboard_dir`` the same scalars go to TensorBoard.

    Its checkpointed state is the file's length and the time: a resumed run cuts the file back to what it
    held when the checkpoint was written (attach it before the :class:`CheckpointHandler`, so that is the
    checkpoint's own step included), so the steps a killed run took after its checkpoint are not logged twice.
    """

    def __init__(self, path: str | Path, log_every: int = 10, tensorboard_dir: str | Path | None = None):
        self.path = Path(path)
        self.log_every = log_every
        self._start = time.perf_counter()
        self._resume_length: int | None = None
        self._tb_dir = tensorboard_dir
        self._tb = None

    def started(self, engine: Engine) -> None:
        if self._resume_length is not None and self.path.is_file() and self.path.stat().st_size > self._resume_length:
            try:
                os.truncate(self.path, self._resume_length)
            except OSError as error:
                raise write_error(self.path, error) from None
        if self._tb_dir is not None and self._tb is None:  # made when the run starts: nothing is written before
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self._tb_dir))

    def state_dict(self) -> dict[str, Any]:
        return {"length": self.path.stat().st_size if self.path.is_file() else 0, "time": self._elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume_length = int(state["length"])
        self._start = time.perf_counter() - float(state["time"])

    def _elapsed(self) -> float:
        return round(time.perf_counter() - self._start, 3)

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": self._elapsed(), **record}
        append_line(self.path, dumps(record))
        if self._tb is not None:
            step = record.get("step", 0)
            for group in ("losses", "weights", "diagnostics"):
                for k, v in (record.get(group) or {}).items():
                    self._tb.add_scalar(f"{record['event']}/{group}/{k}", v, step)
            for task, metrics in (record.get("metrics") or {}).items():
                for k, v in metrics.items():
                    self._tb.add_scalar(f"{record.get('split')}/{task}/{k}", v, step)

    def iteration_completed(self, engine: Engine) -> None:
        s = engine.state
        if s.iteration % self.log_every:
            return
        self.write(
            {
                "event": "train",
                "epoch": s.epoch,
                "step": s.iteration,
                "lr": engine.optimizer.param_groups[0]["lr"],
                "losses": s.losses,
                "weights": s.weights,
                "diagnostics": s.diagnostics,
            }
        )

    def epoch_completed(self, engine: Engine) -> None:
        s = engine.state
        self.write({"event": "epoch", "epoch": s.epoch, "step": s.iteration, "mean_losses": s.epoch_mean_losses()})

    def eval_completed(self, engine: Engine) -> None:
        s = engine.state
        split = s.last_eval
        self.write(
            {
                "event": "eval",
                "split": split,
                "epoch": s.epoch,
                "step": s.iteration,
                "metrics": s.metrics.get(split, {}),
                **s.summary.get(split or "", {}),
            }
        )

    def completed(self, engine: Engine) -> None:
        if self._tb is not None:
            self._tb.close()
