"""Atomic checkpoint files and the run directory's checkpoint policy.

A checkpoint is written to a temporary file in the target directory,
fsynced, then ``os.replace``d over the old one (Ignite's DiskSaver): a writer
killed half-way leaves the previous checkpoint intact (and a ``.NAME.*.tmp``
file, which resuming the run removes). Files get the permissions the user's
umask gives new files, as ``open`` would. A write that fails (disk full,
permission) is a :class:`CheckpointError` naming the file. Files are loaded with
``torch.load(weights_only=True)``; anything that is not an mtlx checkpoint is
reported, never overwritten.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

__all__ = [
    "FORMAT", "TEMPORARY", "append_line", "atomic_write_text", "load_checkpoint", "save_checkpoint", "write_error",
]

FORMAT = "mtlx-checkpoint-v1"
#: The glob of the temporary files an atomic write leaves when it is killed half-way.
TEMPORARY = ".*.tmp"


def write_error(path: str | os.PathLike[str], error: OSError) -> CheckpointError:
    """One line for a failed write: ``cannot write PATH: No space left on device``."""
    return CheckpointError(f"cannot write {path}: {error.strerror or error}")


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append ``line`` to a log file (``metrics.jsonl``, ``resumes.jsonl``); a failed write is :func:`write_error`."""
    try:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
    except OSError as error:
        raise write_error(path, error) from None


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Any) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        cause = _os_error(error)
        if cause is not None:
            raise write_error(path, cause) from None
        raise


def _os_error(error: BaseException | None) -> OSError | None:
    """The OSError behind ``error`` (torch.save reports a failed write as a RuntimeError in its context)."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write an mtlx checkpoint atomically (``payload`` gets the format tag)."""
    _atomic_write(Path(path), lambda f: torch.save({"format": FORMAT, **payload}, f))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - truncated, foreign or unsafe pickles all end here
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
                              "it is truncated or not an mtlx checkpoint") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mtlx checkpoint (expected format {FORMAT!r})")
    return data
