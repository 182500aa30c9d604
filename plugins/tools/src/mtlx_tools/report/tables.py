"""Runs pooled into tables: one per dataset, one row per strategy + config, mean ± sample std over seeds.

A cell is the mean ± sample standard deviation (n - 1) over the seeds, so that
a table reads like the papers' "mean ± std over 3 seeds". Delta_m comes in
both conventions (positive = better): ``task`` averages within each task
first (LibMTL's Δp), ``metric`` weighs every metric the same (Nash-MTL,
CAGrad and FAMO publish its negative).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from mtlx.errors import ConfigError

from .runs import NOT_EXPERIMENT, SPLITS, Run

__all__ = ["CONVENTIONS", "Row", "Stat", "Table", "build_tables"]

CONVENTIONS = ("task", "metric")


@attrs.frozen
class Stat:
    """Values over seeds (``None`` = not available) -> mean ± sample std."""

    values: tuple[float, ...] = attrs.field(converter=lambda vs: tuple(float(v) for v in vs if v is not None))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else math.nan

    def format(self, digits: int) -> str:
        if not self.values:
            return "—"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@attrs.frozen(kw_only=True)
class Row:
    """One strategy + config of a dataset: its seeds and their statistics."""

    label: str
    strategy: str
    runs: tuple[Run, ...]
    cells: dict[tuple[str, str], Stat]
    delta_m: dict[str, Stat]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]


@attrs.frozen(kw_only=True)
class Table:
    """All rows of one dataset, on one split."""

    dataset: str
    split: str
    columns: list[tuple[str, str]]
    higher_is_better: dict[str, dict[str, bool]]
    baseline: dict[str, dict[str, float]] | None
    rows: list[Row]

    def header(self, task: str, metric: str) -> str:
        return f"{task} {metric} {'↑' if self.higher_is_better[task][metric] else '↓'}"


def _labels(groups: Sequence[list[Run]]) -> list[str]:
    """Strategy name, plus the settings that tell apart rows of the same strategy."""
    labels = []
    for runs in groups:
        siblings = [g[0].config for g in groups if g[0].strategy == runs[0].strategy]
        keys = sorted({k for c in siblings for k in c if k not in NOT_EXPERIMENT
                       and len({repr(s.get(k)) for s in siblings}) > 1})
        extra = ", ".join(f"{k}={runs[0].config[k]}" for k in keys if k in runs[0].config)
        labels.append(f"{runs[0].strategy} ({extra})" if extra else runs[0].strategy)
    return labels


def build_tables(runs: Sequence[Run], split: str = "test") -> list[Table]:
    """One :class:`Table` per dataset; rows sorted by strategy, seeds of a row pooled."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    by_dataset: dict[str, list[Run]] = {}
    for run in runs:
        by_dataset.setdefault(run.dataset, []).append(run)
    tables = []
    for dataset, dataset_runs in by_dataset.items():
        groups: dict[tuple[str, Any], list[Run]] = {}
        hib: dict[str, dict[str, bool]] = {}
        columns: dict[tuple[str, str], None] = {}
        for run in dataset_runs:
            groups.setdefault((run.strategy, run.experiment()), []).append(run)
            metrics = run.metrics(split)
            for task in run.results["tasks"]:
                for metric in metrics.get(task, {}):
                    columns[(task, metric)] = None
                    hib.setdefault(task, {})[metric] = bool(run.results["higher_is_better"][task][metric])
        ordered = sorted(groups.values(), key=lambda g: (g[0].strategy, g[0].experiment()))
        rows = [
            Row(
                label=label,
                strategy=group[0].strategy,
                runs=tuple(sorted(group, key=lambda r: r.seed)),
                cells={c: Stat(r.metrics(split).get(c[0], {}).get(c[1]) for r in group) for c in columns},
                delta_m={conv: Stat(r.delta_m(split, conv) for r in group) for conv in CONVENTIONS},
            )
            for label, group in zip(_labels(ordered), ordered, strict=True)
        ]
        tables.append(Table(dataset=dataset, split=split, columns=list(columns), higher_is_better=hib,
                            baseline=dataset_runs[0].results.get("baseline") or None, rows=rows))
    return tables
