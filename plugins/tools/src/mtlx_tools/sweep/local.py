"""The local executor: up to N jobs at once as subprocesses of this one, each on its own GPU when there are GPUs.

Ctrl-C (SIGINT) or SIGTERM stops the sweep cleanly: no job is started any more and the running ones get
SIGINT, on which ``mtlx run`` writes a resumable checkpoint and exits 130; a second signal kills them
(they resume from their last checkpoint). On Linux a job also gets SIGTERM when this process dies, so a
killed sweep leaves no run behind that a new sweep would start a second time.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from mtlx.errors import RunInterrupted
from mtlx.signals import on_stop_signals

from .executor import Job, OnFinish

__all__ = ["LocalExecutor"]

_POLL_S = 0.05
_PR_SET_PDEATHSIG = 1
#: looked up here, not in the forked child, which should only make the call
_PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


class LocalExecutor:
    """Runs ``jobs`` jobs at a time in slots; a job in slot ``s`` sees GPU ``s % gpus`` alone (``CUDA_VISIBLE_DEVICES``).

    Each job's stdout and stderr are appended to ``log_dir/KEY.log``.
    """

    name = "local"

    def __init__(self, jobs: int, *, log_dir: Path, gpus: int = 0):
        self.jobs, self.log_dir, self.gpus = jobs, log_dir, gpus

    def run(self, jobs: Sequence[Job], on_finish: OnFinish) -> None:
        """Run ``jobs`` to the end, calling ``on_finish`` as each ends; raises :class:`RunInterrupted` when a
        signal stopped the sweep (after every started job has ended and been reported)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        waiting = deque(jobs)
        running: dict[int, tuple[subprocess.Popen[bytes], Job]] = {}  # slot -> process, job
        with _stop_on_signals(running) as received:
            while waiting or running:
                for slot in range(self.jobs):
                    if slot not in running and waiting and not received:
                        job = waiting.popleft()
                        running[slot] = (self._start(job, slot), job)
                        if received:  # the signal came while it started: it missed the handler's SIGINT
                            running[slot][0].send_signal(signal.SIGINT)
                for slot, (process, job) in list(running.items()):
                    code = process.poll()
                    if code is not None:
                        del running[slot]
                        on_finish(job, code)
                if received and not running:
                    break
                time.sleep(_POLL_S)
        if received:
            raise RunInterrupted(f"stopped by {received[0]}; {len(waiting)} job(s) were not started")

    def _start(self, job: Job, slot: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "OMP_NUM_THREADS": str(job.threads), "MKL_NUM_THREADS": str(job.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)
        with open(self.log_dir / f"{job.key}.log", "ab") as log:
            return subprocess.Popen(
                job.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,  # noqa: PLW1509 - one system call
            )


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the sweep dies (``mtlx run`` then checkpoints and stops)."""
    parent = os.getppid()
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the sweep died before prctl took effect
        os._exit(RunInterrupted.exit_code)


def _stop_on_signals(running: dict[int, tuple[subprocess.Popen[bytes], Any]]) -> AbstractContextManager[list[str]]:
    """SIGINT/SIGTERM: record it, pass SIGINT on to the running jobs (SIGKILL on the second signal)."""

    def stop(received: list[str]) -> None:
        for process, _ in list(running.values()):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT if len(received) == 1 else signal.SIGKILL)

    return on_stop_signals(stop)
