"""What a running sweep prints: one line per ended run, and on a terminal a live count below them."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.live import Live
from rich.markup import escape

__all__ = ["Progress", "last_error"]

_MARKS = {"finished": "[green]done[/]   ", "failed": "[red]failed[/] ", "interrupted": "[yellow]stopped[/]"}


class Progress:
    """Counts over the whole sweep (``done`` includes the runs finished before); ``parallel``: runs at a time
    (None: the executor decides, e.g. SLURM, and the count says "queued or running")."""

    def __init__(self, console: Console, *, total: int, done: int, failed: int, launched: int, parallel: int | None):
        self.console, self.total, self.done, self.failed = console, total, done, failed
        self.left, self.parallel = launched, parallel
        self._live = Live(self.count(), console=console, transient=True, auto_refresh=False)

    def count(self) -> str:
        active = self.left if self.parallel is None else min(self.parallel, self.left)
        running = "queued or running" if self.parallel is None else "running"
        return f"{self.done}/{self.total} done, {active} {running}, {self.failed} failed"

    def ended(self, key: str, state: str, code: int | None, run_dir: Path, log: Path) -> None:
        self.left -= 1
        self.done += state == "finished"
        self.failed += state == "failed"
        if state == "finished":
            detail = _delta_m(run_dir)
        elif state == "failed":
            detail = f"exit {code}: {last_error(log)} (log: {log})"
        else:
            detail = f"exit {code}, resumable: run the sweep again to continue"
        self.console.print(f"{_MARKS[state]} {escape(key)}  {escape(detail)}  [dim]({self.count()})[/]")
        self._live.update(self.count(), refresh=True)

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._live.start(refresh=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._live.stop()


def last_error(log: Path) -> str:
    """The ``Error: ...`` line a run printed last (mtlx's one-line errors), else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith("Error:")]
    return (errors or lines or ["empty log"])[-1]


def _delta_m(run_dir: Path) -> str:
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return ""
    summary = results.get("test_summary") or results.get("val_summary") or {}
    value = summary.get("delta_m_task")
    return f"Δm {value:+.2f}%" if isinstance(value, int | float) else ""
