"""Runs pooled into tables: one per dataset, one row per setting (strategy + config), mean ± std over seeds.

A cell is the mean ± sample standard deviation (n - 1) over the seeds, so that
a table reads like the papers' "mean ± std over 3 seeds". Delta_m comes in
both conventions (positive = better): ``task`` averages within each task
first (LibMTL's Δp), ``metric`` weighs every metric the same (Nash-MTL,
CAGrad and FAMO publish its negative). The leaderboard's statistics (the
t-interval of Delta_m, the mean rank over metrics, the test against a
reference row) come from :mod:`.stats`.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from mtlx.errors import ConfigError
from mtlx.hooks import PluginManager
from mtlx.registry import Registries

from .labels import Defaults, labels
from .runs import SPLITS, Run
from .stats import Comparison, compare, mean_ranks, t_interval

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
    """One setting of a dataset (strategy + config): its seeds and their statistics."""

    label: str
    strategy: str
    runs: tuple[Run, ...]
    cells: dict[tuple[str, str], Stat]
    delta_m: dict[str, Stat]
    delta_ci: dict[str, tuple[float, float] | None]  # 95 % t-interval of Delta_m's mean; None below 2 seeds
    mean_rank: float | None = None  # over the metrics, among the dataset's rows (1 = best)
    versus: Comparison | None = None  # the test against the reference row (None: no reference, or this is it)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]


@attrs.frozen(kw_only=True)
class Table:
    """All rows of one dataset, on one split; ``reference`` is the label of the row the others are tested
    against, on Delta_m in the ``test_on`` convention."""

    dataset: str
    split: str
    columns: list[tuple[str, str]]
    higher_is_better: dict[str, dict[str, bool]]
    baseline: dict[str, dict[str, float]] | None
    rows: list[Row]
    reference: str | None = None
    test_on: str = "task"

    def header(self, task: str, metric: str) -> str:
        return f"{task} {metric} {'↑' if self.higher_is_better[task][metric] else '↓'}"


def _reference(tables: Sequence[Table], reference: str) -> list[str | None]:
    """Per table, the label of the row ``reference`` names: a row's label, else a strategy with one row there."""
    found: list[str | None] = []
    for table in tables:
        labels = [row.label for row in table.rows if row.label == reference]
        labels = labels or [row.label for row in table.rows if row.strategy == reference]
        if len(labels) > 1:
            raise ConfigError(f"--reference {reference!r} matches {len(labels)} rows of {table.dataset} "
                              f"({'; '.join(labels)}); give one row's label")
        found.append(labels[0] if labels else None)
    if not any(found):
        rows = " / ".join(f"{t.dataset}: {'; '.join(r.label for r in t.rows)}" for t in tables)
        raise ConfigError(f"--reference {reference!r} names no row of any dataset ({rows}); "
                          "give a row's label or a strategy with one row")
    return found


def _ranked(table: Table) -> Table:
    """The mean rank over metrics of each row, from the means over seeds."""
    hib = [table.higher_is_better[t][m] for t, m in table.columns]
    ranks = mean_ranks([[row.cells[c].mean for c in table.columns] for row in table.rows], hib)
    return attrs.evolve(table, rows=[attrs.evolve(row, mean_rank=rank)
                                     for row, rank in zip(table.rows, ranks, strict=True)])


def _tested(table: Table, reference: str | None, split: str, test_on: str) -> Table:
    """Each row but the reference tested against it on Delta_m (``test_on`` convention), paired where seeds match."""
    if reference is None:
        return attrs.evolve(table, test_on=test_on)

    def pairs(row: Row) -> list[tuple[int, float]]:
        return [(r.seed, value) for r in row.runs if (value := r.delta_m(split, test_on)) is not None]

    (ref,) = (row for row in table.rows if row.label == reference)
    rows = [row if row is ref or not pairs(row) or not pairs(ref)
            else attrs.evolve(row, versus=compare(pairs(row), pairs(ref))) for row in table.rows]
    return attrs.evolve(table, rows=rows, reference=reference, test_on=test_on)


def build_tables(runs: Sequence[Run], split: str = "test", *, reference: str | None = None,
                 test_on: str = "task", registries: Registries | None = None,
                 warn: Callable[[str], None] | None = None) -> list[Table]:
    """One :class:`Table` per dataset; rows sorted by strategy, then label; seeds of a row pooled.

    ``reference`` (a row's label, or a strategy with one row in a dataset) adds a t-test of each row's
    Delta_m (``test_on`` convention) against that row; a :class:`ConfigError` when it names no row at all.
    Rows are labelled by what departs from the other rows and from the defaults of ``registries`` (None: the
    installed plugins'), see :mod:`.labels`; components without a plugin there get one line to ``warn``
    (default: a warning).
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if test_on not in CONVENTIONS:
        raise ConfigError(f"the test is on Delta_m's {' or '.join(CONVENTIONS)} convention, got {test_on!r}")
    by_dataset: dict[str, list[Run]] = {}
    for run in runs:
        by_dataset.setdefault(run.dataset, []).append(run)
    defaults = Defaults(registries if registries is not None else PluginManager().registries)
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
        rows = []
        for label, group in zip(labels([g[0].config for g in ordered], defaults), ordered, strict=True):
            delta = {conv: Stat(r.delta_m(split, conv) for r in group) for conv in CONVENTIONS}
            rows.append(Row(
                label=label,
                strategy=group[0].strategy,
                runs=tuple(sorted(group, key=lambda r: r.seed)),
                cells={c: Stat(r.metrics(split).get(c[0], {}).get(c[1]) for r in group) for c in columns},
                delta_m=delta,
                delta_ci={conv: t_interval(stat.values) for conv, stat in delta.items()},
            ))
        rows.sort(key=lambda row: (row.strategy, row.label))  # a strategy's all-default row first
        tables.append(_ranked(Table(dataset=dataset, split=split, columns=list(columns), higher_is_better=hib,
                                    baseline=dataset_runs[0].results.get("baseline") or None, rows=rows)))
    if (line := defaults.warning()) is not None:
        (warn or (lambda text: warnings.warn(text, RuntimeWarning, stacklevel=3)))(line)
    references = _reference(tables, reference) if reference is not None else [None] * len(tables)
    return [_tested(table, ref, split, test_on) for table, ref in zip(tables, references, strict=True)]
