"""``mtlx run --nproc N``: run this command's workers under torchrun's elastic agent, in this process.

The agent runs here rather than in a ``torchrun`` child so that what reaches this process reaches the workers:
SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to them by the agent (they write last.pt and stop with exit 130;
the agent kills any still running 30 s later), and none is left behind. A worker that fails with an
:class:`~mtlx.errors.MtlxError` writes its exit code and one-line message to a file in a directory the launcher
owns (``MTLX_FAILURE_DIR``) instead of printing it; the launcher prints the first failure's line once and exits
with its code, as a one-process run would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click

from ..errors import MtlxError

__all__ = ["FAILURE_DIR", "relaunch", "report_failure"]

FAILURE_DIR = "MTLX_FAILURE_DIR"


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("debug"))


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
    """Run this command on ``nproc`` local workers (torchrun ``--standalone``); exit with the first failure's code."""
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
        args = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
                                    "-m", "mtlx", *_worker_args(run_dir)])
        try:
            torchrun.run(args)
        except ChildFailedError as error:
            rank, failure = error.get_first_failure()
            code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
            fallback = (f"worker {rank} died with {signal.Signals(-failure.exitcode).name}" if failure.exitcode < 0
                        else f"worker {rank} exited with code {code}")
            _exit(Path(failures), code, f"{fallback} (mtlx run --debug shows its traceback)")
        except SignalException as error:
            _exit(Path(failures), 130, f"interrupted by {signal.Signals(error.sigval).name} before the workers started")
        finally:
            os.environ.pop(FAILURE_DIR, None)
    raise SystemExit(0)


def _exit(failures: Path, code: int, fallback: str) -> NoReturn:
    """Print the first worker failure of the last attempt (else ``fallback``) and exit with its code."""
    reports = [json.loads(path.read_text()) for path in failures.glob("*.json")]
    if reports:
        first = min(reports, key=lambda r: (-r["attempt"], r["time"]))
        code, fallback = first["exit_code"], first["message"]
    click.echo(f"Error: {fallback}", err=True)
    raise SystemExit(code)


@contextlib.contextmanager
def report_failure() -> Iterator[None]:
    """In a worker of :func:`relaunch`: an :class:`MtlxError` goes to the launcher's file, not to stderr."""
    folder = os.environ.get(FAILURE_DIR)
    try:
        yield
    except MtlxError as error:
        if not folder or "RANK" not in os.environ:
            raise
        rank, attempt = int(os.environ["RANK"]), int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        report = {"exit_code": error.exit_code, "message": str(error), "attempt": attempt, "time": time.time()}
        path = Path(folder) / f"attempt{attempt}-rank{rank}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report))
        tmp.replace(path)  # the launcher never reads half a report
        raise SystemExit(error.exit_code) from None
