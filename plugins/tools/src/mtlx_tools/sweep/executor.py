"""What a sweep hands an executor: jobs (one per cell), each a command that runs or resumes its cell.

A job's command is idempotent by design: ``python -m mtlx_tools.sweep.cell SWEEP_DIR KEY`` starts the cell's
run when its directory holds no checkpoint and resumes it from ``last.pt`` otherwise, so an executor that
reruns a killed, preempted or requeued job (local, SLURM) continues it exactly. Executors only launch
commands and report exit codes; the sweep keeps the bookkeeping (manifest, states, skipping).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import attrs


@attrs.frozen
class Job:
    """One cell to run: its deterministic key (the run directory's name), that directory and its command."""

    key: str
    run_dir: Path
    argv: tuple[str, ...]
    threads: int = 1  # the CPU threads the run may use (``--threads``); GPU jobs get one device each


# called once per job as it ends: the job and its exit code (None: the executor lost track of it)
OnFinish = Callable[[Job, "int | None"], None]


class Executor(Protocol):
    """Runs jobs to completion (blocking), calling ``on_finish`` as each one ends."""

    name: str

    def run(self, jobs: Sequence[Job], on_finish: OnFinish) -> None: ...
