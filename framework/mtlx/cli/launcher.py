"""``mtlx run --nproc N``: run this command's workers under torchrun's elastic agent, in this process.

The agent runs here rather than in a ``torchrun`` child so that what reaches this process reaches the workers:
SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to them by the agent (they stop after the same step, write last.pt
and exit with 130; the agent waits for them, and kills any still running 30 s later), and none is left behind.
A worker that fails with an :class:`~mtlx.errors.MtlxError` writes its exit code and one-line message to a file
in a directory the launcher owns (``MTLX_FAILURE_DIR``) instead of printing it, before it exits; the launcher
reads them once every worker has exited, prints the first failure's line and exits with its code, as a
one-process run would. ``--max-restarts`` restarts a group only after a worker was killed by a signal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from ..checkpoint import atomic_write_text
from ..errors import MtlxError
from .context import Invocation

__all__ = ["ATTEMPT", "FAILURE_DIR", "attempt", "relaunch", "report_failure"]

FAILURE_DIR = "MTLX_FAILURE_DIR"
#: How long torch's agent waits for the workers it stopped with SIGTERM before it SIGKILLs them.
_AGENT_KILL_AFTER_S = 30
#: The workers' attempt (0, then 1 after the first restart ...): a restarted worker resumes from last.pt.
ATTEMPT = "MTLX_ATTEMPT"


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    invocation = ctx.find_object(Invocation) if ctx else None
    return bool(invocation and invocation.debug)


def _worker_args(run_dir: Path | None) -> list[str]:
    """This command's arguments without the launcher's own options, with the run directory made explicit.

    Every worker, and every restarted worker, must use the same directory: a default one is named by the time.
    """
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg in ("--nproc", "--max-restarts"):
            skip = True
        elif not arg.startswith(("--nproc=", "--max-restarts=")):
            args.append(arg)
    if run_dir is not None and "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(run_dir)]
    return args


def relaunch(nproc: int, max_restarts: int, run_dir: Path | None) -> NoReturn:
    """Run this command on ``nproc`` local workers (torchrun ``--standalone``); exit with the first failure's code.

    A group in which a worker was killed by a signal (SIGKILL from the OOM killer or a user, SIGSEGV, ...) is
    started again, up to ``max_restarts`` times, and continues from last.pt. Any other failure ends the run: an
    mtlx error (bad config 2, plugin 3, checkpoint or disk 4, data 5, non-finite values 6, stopped 130) or an
    unexpected exception (1) would come back on a restart from the same checkpoint.
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    for name in list(logging.root.manager.loggerDict):  # the agent's notices, each logger with its own level
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # the failing worker's line replaces them
    debug = _debug()
    with tempfile.TemporaryDirectory(prefix="mtlx-failures-") as failures:
        if not debug:  # under --debug the workers print their tracebacks themselves
            os.environ[FAILURE_DIR] = failures
        args = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0",
                                    "-m", "mtlx", *_worker_args(run_dir)])
        try:
            for restart in range(max_restarts + 1):
                os.environ[ATTEMPT] = str(restart)
                try:
                    torchrun.run(args)
                    break
                except ChildFailedError as error:
                    killed = _killed_worker(error.failures, _reports(Path(failures), restart))
                    if killed is not None and restart < max_restarts:
                        click.echo(f"mtlx run: {killed[1]}; restarting the workers from last.pt "
                                   f"(restart {restart + 1} of {max_restarts})", err=True)
                        continue
                    if killed is not None:  # the cause: the other workers' errors (a closed connection) follow
                        raise SystemExit(_echo(*killed)) from None
                    rank, code = _first_exit(error.failures)
                    _exit(Path(failures), code,
                          f"worker {rank} exited with code {code} (mtlx run --debug shows its traceback)")
                except SignalException as error:
                    name = signal.Signals(error.sigval).name
                    _exit(Path(failures), 130,
                          f"interrupted by {name} before any worker reported (mtlx run --debug shows their output)")
        finally:
            os.environ.pop(FAILURE_DIR, None)
            os.environ.pop(ATTEMPT, None)
    raise SystemExit(0)


def attempt() -> int:
    """Which start of the workers this is: 0, then one more after each restart (``mtlx run --max-restarts``, or
    torchrun's own ``--max-restarts`` for a group started with ``torchrun``, which restarts after any failure)."""
    return int(os.environ.get(ATTEMPT, "0")) + int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def _killed_worker(failures: Mapping[int, Any], reports: list[dict[str, Any]]) -> tuple[int, str] | None:
    """``(exit code, "worker R was killed by SIGNAL")`` for a worker whose death by a signal failed the group,
    else None.

    The agent stops the other workers after a failure with SIGTERM and, 30 s later, SIGKILL, and torch lists
    them among the failures: a SIGTERM is never the cause, nor a kill well after a worker reported its error.
    """
    reported = min((r["time"] for r in reports), default=math.inf)
    for rank, failure in sorted(failures.items()):
        sig = -failure.exitcode
        if sig > 0 and sig != signal.SIGTERM and failure.timestamp < reported + _AGENT_KILL_AFTER_S / 2:
            return 128 + sig, f"worker {rank} was killed by {signal.Signals(sig).name}"
    return None


def _first_exit(failures: Mapping[int, Any]) -> tuple[int, int]:
    """``(rank, exit code)`` of the earliest failure; of those seen at once, a worker's own exit before a death by
    the signal the agent sent it."""
    rank, failure = min(failures.items(), key=lambda item: (item[1].timestamp, item[1].exitcode < 0, item[0]))
    return rank, failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode


def _reports(failures: Path, number: int | None = None) -> list[dict[str, Any]]:
    """The workers' failure reports (of attempt ``number`` only, if given)."""
    reports = [json.loads(path.read_text()) for path in failures.glob("*.json")]
    return [r for r in reports if number is None or r["attempt"] == number]


def _echo(code: int, message: str) -> int:
    click.echo(f"Error: {message}", err=True)
    return code


def _exit(failures: Path, code: int, fallback: str) -> NoReturn:
    """Print the first worker failure of the last attempt (else ``fallback``) and exit with its code."""
    reports = _reports(failures)
    if reports:
        first = min(reports, key=lambda r: (-r["attempt"], r["time"]))
        code, fallback = first["exit_code"], first["message"]
    raise SystemExit(_echo(code, fallback))


@contextlib.contextmanager
def report_failure() -> Iterator[None]:
    """In a worker of :func:`relaunch`: an :class:`MtlxError` goes to the launcher's file, not to stderr."""
    folder = os.environ.get(FAILURE_DIR)
    try:
        yield
    except MtlxError as error:
        if not folder or "RANK" not in os.environ:
            raise
        rank, number = int(os.environ["RANK"]), attempt()
        report = {"exit_code": error.exit_code, "message": str(error), "attempt": number, "time": time.time()}
        atomic_write_text(Path(folder) / f"attempt{number}-rank{rank}.json", json.dumps(report))
        raise SystemExit(error.exit_code) from None
