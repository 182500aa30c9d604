"""The sweep directory: ``manifest.json``, ``runs/KEY`` (each cell's ``mtlx run`` directory), ``logs/KEY.log``.

The manifest holds the spec, the plugins the cells load, and per cell its settings, its resolved config,
its state and last exit code. It is rewritten atomically (the core's tmp + ``os.replace``) whenever a run
ends, so a sweep killed at any point leaves a readable one. States are re-read from the run directories
when a sweep starts: ``results.json`` means finished, ``last.pt`` resumable; only "failed" (an exit code
that is not an interruption) comes from the manifest alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from mtlx.checkpoint import atomic_write_text
from mtlx.config import load_toml
from mtlx.errors import CheckpointError, ConfigError, RunInterrupted
from mtlx.runner import RUN_FILES

from .cells import Cell, differences

__all__ = [
    "MANIFEST", "Entry", "Manifest", "adopt", "check_run_dir", "check_sweep_dir", "check_unchanged", "current_state",
    "locked", "log_path", "run_dir", "state_after",
]

MANIFEST = "manifest.json"
FORMAT = 1
_SHOWN = 5  # runs named in one error line before "and N more"


def run_dir(sweep_dir: Path, key: str) -> Path:
    return sweep_dir / "runs" / key


def log_path(sweep_dir: Path, key: str) -> Path:
    return sweep_dir / "logs" / f"{key}.log"


@attrs.define(kw_only=True)
class Entry:
    """One cell in the manifest. ``state``: pending, queued, finished, failed or interrupted."""

    key: str
    label: str
    settings: dict[str, Any]
    config: dict[str, Any]
    state: str = "pending"
    exit_code: int | None = None
    attempts: int = 0  # times a job of the cell ended and was reported (jobs killed with their sweep are not)

    @classmethod
    def of(cls, cell: Cell, previous: Entry | None) -> Entry:
        kept = {"exit_code": previous.exit_code, "attempts": previous.attempts, "state": previous.state} if previous else {}
        return cls(key=cell.key, label=cell.label, settings=cell.settings, config=cell.config, **kept)


@attrs.define(kw_only=True)
class Manifest:
    name: str
    spec: dict[str, Any]
    plugins: list[str] = attrs.field(factory=list)
    blocked: list[str] = attrs.field(factory=list)
    cells: dict[str, Entry] = attrs.field(factory=dict)

    def write(self, sweep_dir: Path) -> None:
        data = {"format": FORMAT, "name": self.name, "spec": self.spec, "plugins": self.plugins,
                "blocked": self.blocked, "cells": [attrs.asdict(entry) for entry in self.cells.values()]}
        atomic_write_text(sweep_dir / MANIFEST, json.dumps(data, indent=1) + "\n")

    @classmethod
    def read(cls, sweep_dir: Path) -> Manifest | None:
        """The manifest of ``sweep_dir``, None when it has none."""
        path = sweep_dir / MANIFEST
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            cells = {c["key"]: Entry(**c) for c in data["cells"]}
            return cls(name=data["name"], spec=data["spec"], plugins=data["plugins"], blocked=data["blocked"],
                       cells=cells)
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{path} is not a manifest of mtlx sweep ({type(error).__name__}: {error})") from None


def current_state(sweep_dir: Path, key: str, recorded: str) -> str:
    """A cell's state from its run directory, with the manifest's ``recorded`` state for failures."""
    run = run_dir(sweep_dir, key)
    if (run / "results.json").is_file():
        return "finished"
    if recorded == "failed":
        return "failed"
    return "interrupted" if (run / "last.pt").is_file() else "pending"


def state_after(sweep_dir: Path, key: str, code: int | None) -> str:
    """The state a job's exit code leaves: killed by a signal, stopped (130) or lost track of is interrupted."""
    if code == 0:
        return "finished" if (run_dir(sweep_dir, key) / "results.json").is_file() else "failed"
    if code is None or code < 0 or code == RunInterrupted.exit_code:
        return "interrupted"
    return "failed"


def check_sweep_dir(sweep_dir: Path, name: str) -> Manifest | None:
    """The manifest of sweep ``name`` in ``sweep_dir`` (None: a new sweep); refuses any other directory."""
    for parent in sweep_dir.resolve().parents:
        if (parent / MANIFEST).is_file():
            raise CheckpointError(f"{sweep_dir} is inside the directory of another sweep ({parent}); choose "
                                  "another --out")
    held = [f for f in RUN_FILES if (sweep_dir / f).exists()]
    if held:
        raise CheckpointError(f"{sweep_dir} is a run directory ({', '.join(held)}), not a sweep's; choose another --out")
    manifest = Manifest.read(sweep_dir)
    if manifest is None:
        runs = sweep_dir / "runs"
        if runs.is_dir() and any(runs.iterdir()):
            raise CheckpointError(f"{runs} holds run directories but {sweep_dir} has no {MANIFEST}: they are not "
                                  "this sweep's; choose another --out")
    elif manifest.name != name:
        raise CheckpointError(f"{sweep_dir} holds the runs of sweep {manifest.name!r}, not {name!r}; choose another "
                              f"--out (or --name {manifest.name} to continue that sweep)")
    return manifest


def adopt(sweep_dir: Path, cells: Iterable[Cell]) -> list[Cell]:
    """``cells``, each keyed by the run directory of ``sweep_dir`` that already trains it.

    A directory's name hashes the config of the mtlx that made it. A later mtlx that adds an option (at the
    default that reproduces what was trained before) gives the same cell another hash: the cell takes the
    directory of its label whose saved config differs from its own only by such options, so upgrading
    mid-sweep neither re-runs nor strands a run.
    """
    cells = list(cells)
    runs = sweep_dir / "runs"
    keys = {cell.key for cell in cells}
    if not runs.is_dir():
        return cells
    free = {p.name: p for p in runs.iterdir() if p.name not in keys and (p / "config.toml").is_file()}
    adopted = []
    for cell in cells:
        if not run_dir(sweep_dir, cell.key).exists():
            match = next((name for name, path in sorted(free.items()) if name.rpartition("-")[0] == cell.label
                          and not differences(load_toml(path / "config.toml"), cell.config, cell.defaults)), None)
            if match is not None:
                del free[match]
                cell = attrs.evolve(cell, key=match)
        adopted.append(cell)
    return adopted


def check_unchanged(sweep_dir: Path, cells: Iterable[Cell]) -> None:
    """Refuse a spec that no longer gives the finished runs of ``sweep_dir`` (an edit that re-labels them)."""
    cells = list(cells)
    keys = {cell.key for cell in cells}
    runs = sweep_dir / "runs"
    stale = sorted(p for p in (runs.iterdir() if runs.is_dir() else ())
                   if p.name not in keys and (p / "results.json").is_file())
    if not stale:
        return
    named = [_relabelled(path, cells) for path in stale]
    more = f" and {len(named) - _SHOWN} more" if len(named) > _SHOWN else ""
    raise ConfigError(
        f"this spec no longer gives {len(stale)} finished run(s) of {sweep_dir}: {'; '.join(named[:_SHOWN])}{more}; "
        "their directories would stand beside runs of other settings: undo the edit, move those runs away, "
        "or choose another --out"
    )


def _relabelled(path: Path, cells: list[Cell]) -> str:
    """``KEY`` of a stale run, with what its label now means when a cell of the spec carries that label."""
    label = path.name.rpartition("-")[0]
    same = [cell for cell in cells if cell.label == label]
    if not same or not (path / "config.toml").is_file():
        return path.name
    saved = load_toml(path / "config.toml")
    changes = min((differences(saved, cell.config, cell.defaults) for cell in same), key=len)
    return f"{path.name} (now {changes})"


def check_run_dir(run: Path, config: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> None:
    """Refuse a run directory that holds a run of other settings than its cell's (another sweep's, a copy);
    ``defaults`` as in :func:`differences`."""
    saved = run / "config.toml"
    if not saved.is_file():
        return
    changes = differences(load_toml(saved), config, defaults)
    if changes:
        raise CheckpointError(f"run directory {run} holds a run of other settings ({changes}): it "
                              "belongs to another sweep; move it away or choose another --out")


@contextlib.contextmanager
def locked(sweep_dir: Path) -> Iterator[None]:
    """Hold ``sweep_dir/.lock`` so that two sweeps never launch the same cells."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"another mtlx sweep is running in {sweep_dir}; wait for it or stop it") from None
        yield
