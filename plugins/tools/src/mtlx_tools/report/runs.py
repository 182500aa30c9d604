"""Finished runs read back from their run directories (``config.toml``, ``results.json``, ``metrics.jsonl``).

Runs of one dataset with the same strategy and config are the seeds of one
row; only ``train.seed`` and the settings that do not change what is trained
(:data:`NOT_EXPERIMENT`) may differ. Delta_m is taken from each run's summary,
or recomputed with :func:`mtlx.metrics.delta_m` where a run lacks it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from mtlx.config import RETIRED_KEYS, load_toml
from mtlx.errors import ConfigError
from mtlx.metrics import delta_m

__all__ = ["NOT_EXPERIMENT", "SPLITS", "Run", "find_runs", "load_run"]

#: Settings that do not change what is trained: runs differing only in these (and the seed) share a row.
#: ``train.threads``: a sweep gives each run its share of the CPU, which may differ between its cells.
NOT_EXPERIMENT = frozenset(
    {"train.seed", "train.device", "train.data_root", "train.num_workers", "train.log_every", "train.checkpoint_every",
     "train.threads"}
)

#: ``--split`` -> (metrics key, summary key) in ``results.json``. ``test-at-best`` is the test result of the
#: best validation epoch; the runner stores it only when that epoch is not the last, else it is ``test``.
SPLITS = {
    "test": ("test", "test_summary"),
    "val": ("val", "val_summary"),
    "test-at-best": ("test_at_best", "test_at_best_summary"),
}


@attrs.frozen(kw_only=True)
class Run:
    """One finished run directory."""

    path: Path
    config: dict[str, Any]  # flat ``section.key`` -> value
    results: dict[str, Any]
    records: list[dict[str, Any]] = attrs.field(eq=False, repr=False)

    @property
    def dataset(self) -> str:
        return str(self.results["dataset"])

    @property
    def strategy(self) -> str:
        return str(self.results["strategy"])

    @property
    def seed(self) -> int:
        return int(self.config.get("train.seed", 0))

    def experiment(self) -> tuple[tuple[str, str], ...]:
        """The config that defines the row (everything but :data:`NOT_EXPERIMENT`), hashable."""
        return tuple(sorted((k, repr(v)) for k, v in self.config.items() if k not in NOT_EXPERIMENT))

    def _keys(self, split: str) -> tuple[str, str]:
        """(metrics key, summary key) of ``split``; test-at-best is test when the best epoch was the last."""
        if split == "test-at-best" and self.results.get("test_at_best") is None:
            return SPLITS["test"]
        return SPLITS[split]

    def metrics(self, split: str) -> dict[str, dict[str, float | None]]:
        metrics = self.results.get(self._keys(split)[0])
        if metrics is None:
            have = ", ".join(s for s, (k, _) in SPLITS.items() if self.results.get(k) is not None) or "none"
            raise ConfigError(f"run {self.path} has no {split!r} results (results.json has: {have}); "
                              f"choose another --split")
        return metrics

    def delta_m(self, split: str, convention: str) -> float | None:
        """Delta_m (%) from the run's summary, else recomputed against its baseline; None without a baseline."""
        stored = (self.results.get(self._keys(split)[1]) or {}).get(f"delta_m_{convention}")
        if stored is not None:
            return float(stored)
        baseline = self.results.get("baseline")
        if not baseline:
            return None
        return delta_m(self.metrics(split), baseline, self.results["higher_is_better"], convention)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path.parent} is not a finished run: it has no {path.name} "
                          f"(an interrupted run continues with `mtlx run --resume {path.parent}`)") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} cannot be read as JSON ({error}); is the run directory damaged?") from None


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ConfigError(f"{path}:{number} is not a JSON record ({error}); "
                              "is the run directory damaged?") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path}:{number} is not a JSON object")
        records.append(record)
    return records


def load_run(path: str | Path) -> Run:
    """Read a run directory; missing or damaged files raise :class:`ConfigError` naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"run directory {path} does not exist")
    # a key retired since (never read by a run) does not make a run another experiment
    config = {k: v for k, v in load_toml(path / "config.toml").items() if k not in RETIRED_KEYS}
    results = _read_json(path / "results.json")
    missing = [k for k in ("dataset", "strategy", "tasks", "higher_is_better") if not isinstance(results, dict)
               or k not in results]
    if missing:
        raise ConfigError(f"{path / 'results.json'} is not an mtlx results file (missing {', '.join(missing)})")
    return Run(path=path, config=config, results=results, records=_read_records(path / "metrics.jsonl"))


def _run_dirs(folder: Path) -> list[Path]:
    """The directories holding a ``config.toml`` at any depth below ``folder`` (a sweep's cells, a folder of
    runs), sorted; the search does not enter a run directory."""
    found = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        found.extend([path] if (path / "config.toml").is_file() else _run_dirs(path))
    return found


def find_runs(paths: Iterable[str | Path], skip: Callable[[str], None] | None = None) -> list[Run]:
    """Load each run directory; a directory that is not itself a run stands for the runs at any depth below it
    (a sweep directory, a folder of runs). A run named twice is loaded once.

    A folder that holds no run, or a run that has not finished (no results.json), is skipped with one
    line to ``skip`` (default: a warning) so that one stale folder does not stop a report of the rest;
    a :class:`ConfigError` only when nothing is left to report.
    """
    skip = skip or (lambda line: warnings.warn(line, RuntimeWarning, stacklevel=3))
    given = [Path(p) for p in paths]
    candidates: list[Path] = []
    for path in given:
        if path.is_dir() and not (path / "config.toml").exists():
            inner = _run_dirs(path)
            if not inner:
                skip(f"skipping {path}: neither a run directory (no config.toml) nor a folder of runs")
            candidates.extend(inner)
        else:
            candidates.append(path)
    runs, seen = [], set()
    for path in candidates:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if path.is_dir() and not (path / "results.json").exists():
            skip(f"skipping {path}: an unfinished run (no results.json yet)")
            continue
        runs.append(load_run(path))
    if not runs:
        raise ConfigError(f"no finished run to report in {', '.join(map(str, given))}")
    return runs
