"""Time real training steps: the core's :class:`~mtlx.engine.Engine`, split by the :mod:`mtlx.phases` labels.

The engine is built as ``mtlx run`` builds it (:func:`mtlx.runner.make_engine`:
optimiser, precision with its GradScaler, gradient clipping, per-task gradient
method) and runs on one batch over and over. The step's wall time comes from
an unprofiled pass; the profiler's pass gives each labelled region's share of
the step, scaled to that wall time, so the profiler's own overhead does not
inflate the numbers. On CUDA a region's time is its kernels' time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import attrs
import torch
from torch.profiler import ProfilerActivity, profile

from mtlx.build import Components
from mtlx.engine import Engine
from mtlx.phases import BACKWARD, FORWARD, OPTIMIZER, PER_TASK_GRADS, STRATEGY
from mtlx.runner import make_engine

__all__ = ["INNER_PHASES", "PHASES", "StepTimes", "step_engine", "time_steps"]

#: The step's top-level regions, then those inside ``mtlx/strategy`` (the core's work for the strategy).
PHASES = (FORWARD, STRATEGY, OPTIMIZER)
INNER_PHASES = (PER_TASK_GRADS, BACKWARD)


@attrs.frozen
class StepTimes:
    """Mean milliseconds per engine step: the whole step and each labelled region in it."""

    total: float
    phases: dict[str, float]

    @property
    def other(self) -> float:
        """The engine's own work outside the top-level regions (zero_grad, finiteness checks, events)."""
        return self.total - sum(self.phases[p] for p in PHASES)


class _Repeat:
    """A loader that yields the profiled batch forever (its epoch never ends within the timed steps)."""

    def __init__(self, batch: Any):
        self.batch = batch

    def __len__(self) -> int:
        return sys.maxsize

    def __iter__(self) -> Iterator[Any]:
        return itertools.repeat(self.batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_to(engine: Engine, steps: int) -> float:
    """Run the engine until its step counter reaches ``steps``; return the wall seconds."""
    engine.state.max_steps = steps
    _sync(engine.device)
    start = time.perf_counter()
    engine.run()
    _sync(engine.device)
    return time.perf_counter() - start


#: a line of kineto's own log: ``USDT:2026-01-01 12:00:00 123:123 SyncActivityProfilerHandler.cpp:52] profiler_start``
_KINETO_LOG = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \w+\.(?:cpp|h):\d+\] ")


@contextlib.contextmanager
def _without_profiler_logs() -> Iterator[None]:
    """Keep torch.profiler's C++ backend (kineto) from logging its stages into the command's output.

    Kineto writes them straight to the process's stderr (file descriptor 2), and no ``KINETO_LOG_LEVEL`` hides
    them without hiding its errors too: fd 2 is captured around the profiled steps and every other line is
    written back.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            if kept := "".join(line for line in lines if not _KINETO_LOG.match(line)):
                os.write(2, kept.encode())


def _region_ms(engine: Engine, steps: int) -> tuple[dict[str, float], float]:
    """(summed ms per label, profiled wall ms) of ``steps`` more steps under ``torch.profiler``."""
    cuda = engine.device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with _without_profiler_logs(), profile(activities=activities) as prof:
        wall = _run_to(engine, engine.state.iteration + steps)
    totals = {e.key: e for e in prof.key_averages()}

    def ms(label: str) -> float:
        event = totals.get(label)
        if event is None:
            return 0.0
        if not cuda:
            return event.cpu_time_total / 1e3
        us = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0.0)  # torch < 2.5
        return us / 1e3

    return {label: ms(label) for label in (*PHASES, *INNER_PHASES)}, wall * 1e3


def step_engine(components: Components, batch: Any, *, synthetic: bool) -> Engine:
    """The engine ``mtlx run`` would build, training on ``batch`` forever.

    ``synthetic`` batches have no targets: each task's loss is then a stand-in,
    the mean squared prediction, with the same graph below it.
    """
    engine = make_engine(components, _Repeat(batch))
    if synthetic:
        engine.tasks = {t: attrs.evolve(spec, loss=_stand_in_loss) for t, spec in engine.tasks.items()}
    return engine


def time_steps(engine: Engine, *, steps: int, warmup: int) -> StepTimes:
    """Mean per-step times of ``steps`` engine steps after ``warmup`` untimed ones."""
    if warmup:
        _run_to(engine, engine.state.iteration + warmup)
    step_ms = _run_to(engine, engine.state.iteration + steps) * 1e3 / steps
    regions, profiled_ms = _region_ms(engine, steps)
    scale = step_ms * steps / profiled_ms if profiled_ms > 0 else 0.0
    return StepTimes(total=step_ms, phases={label: v * scale / steps for label, v in regions.items()})


def _stand_in_loss(prediction: torch.Tensor, target: Any) -> torch.Tensor:
    return prediction.float().square().mean()
