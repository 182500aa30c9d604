"""The run directory: checked before anything is built into it, then claimed under a lock for the run's life.

``mtlx run`` starts in two phases. First everything that can fail is built and
checked, and :func:`check_writable` makes sure the directory can be made and
has room for a checkpoint; nothing is written. Then :func:`claim` makes the
directory and takes ``RUN_DIR/.lock`` (``flock``, released when the process
ends, however it ends), under which a new run checks again that the directory
holds no run, and a resumed run removes the temporary files a killed writer
left. A second ``mtlx run`` on the same directory, new or resumed, is refused
while the first holds the lock.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from .checkpoint import TEMPORARY
from .errors import CheckpointError

try:
    import fcntl
except ImportError:  # Windows: no flock; the directory is then not protected against a concurrent start
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK", "RUN_FILES", "check_writable", "claim", "new_run_id", "refuse_existing_run"]

#: Files whose presence marks a directory as holding a run.
RUN_FILES = ("config.toml", "last.pt", "best.pt", "results.json", "metrics.jsonl")
#: The lock file a running ``mtlx run`` holds in its directory.
LOCK = ".lock"


def new_run_id() -> str:
    """A fresh id binding a run's config.toml to its checkpoints."""
    return uuid.uuid4().hex


def refuse_existing_run(run_dir: Path) -> None:
    """A :class:`CheckpointError` if ``run_dir`` holds a run: an existing run is never overwritten."""
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing:
        raise CheckpointError(
            f"run directory {run_dir} already holds a run ({', '.join(existing)}); "
            f"continue it with --resume {run_dir} or choose another --out"
        )


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "bytes" else f"{int(n)} bytes"
        n /= 1024
    raise AssertionError("unreachable")


def check_writable(run_dir: Path, checkpoint_bytes: int) -> None:
    """Before anything is written: ``run_dir`` can be made (or is a directory) and written, with room for one
    checkpoint of ``checkpoint_bytes`` (free disk space, and the per-file limit of ``ulimit -f``)."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CheckpointError(f"cannot create the run directory {run_dir}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckpointError(f"cannot write in {existing}: permission denied (the run directory is {run_dir})")
    room, what = shutil.disk_usage(existing).free, "free on its disk"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < room:
        room, what = limit, "allowed per file (ulimit -f)"
    if checkpoint_bytes > room:
        raise CheckpointError(f"no room for a checkpoint in {run_dir}: one takes about {_size(checkpoint_bytes)}, "
                              f"{_size(room)} {what}")


@contextlib.contextmanager
def claim(run_dir: Path, *, new: bool) -> Iterator[None]:
    """Hold ``run_dir`` for the block: make it (``new``), lock it, and check it under the lock.

    A new run's directory must hold no run; a resumed run's loses the temporary files of writers killed
    half-way. The lock is released when the block ends (or the process dies), whatever forks still share the file.
    """
    try:
        if new:
            run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise CheckpointError(f"cannot create the run directory {run_dir}: {error.strerror or error}") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CheckpointError(
                    f"run directory {run_dir} is in use by another mtlx run (it holds {run_dir / LOCK})"
                ) from None
        if new:
            refuse_existing_run(run_dir)
        else:
            for stale in run_dir.glob(TEMPORARY):
                stale.unlink(missing_ok=True)
        yield
    finally:
        if fcntl is not None:  # released here, not when the last fork sharing the file (a loader worker) exits
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
