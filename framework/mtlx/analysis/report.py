"""Tables and plots across finished runs (``mtlx report``).

Runs are read from their run directories (``config.toml``, ``results.json``,
``metrics.jsonl``; see :mod:`mtlx.runner`). Runs of one dataset with the same
strategy and config are the seeds of one row; only ``train.seed`` and the
settings that do not change what is trained (:data:`NOT_EXPERIMENT`) may
differ. A cell is the mean ± sample standard deviation (n - 1) over the
seeds, so that a table reads like the papers' "mean ± std over 3 seeds".

Delta_m is taken from each run's summary, or recomputed with
:func:`mtlx.metrics.delta_m` where a run lacks it, in both conventions
(positive = better): ``task`` averages within each task first (LibMTL's Δp),
``metric`` weighs every metric the same (Nash-MTL, CAGrad and FAMO publish
its negative).

Plots use matplotlib's Agg canvas on each figure (no pyplot, no global
backend): matplotlib is the optional extra ``mtlx[report]``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import textwrap
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..config import load_toml
from ..errors import ConfigError
from ..metrics import delta_m

__all__ = [
    "NOT_EXPERIMENT",
    "SPLITS",
    "Row",
    "Run",
    "Stat",
    "Table",
    "build_tables",
    "find_runs",
    "load_run",
    "new_figure",
    "require_matplotlib",
    "save_figure",
    "to_csv",
    "to_markdown",
    "to_rich",
    "write_report",
]

#: Settings that do not change what is trained: runs differing only in these (and the seed) share a row.
NOT_EXPERIMENT = frozenset(
    {"train.seed", "train.device", "train.data_root", "train.num_workers", "train.log_every", "train.checkpoint_every"}
)

#: ``--split`` -> (metrics key, summary key) in ``results.json``. ``test-at-best`` is the test result of the
#: best validation epoch; the runner stores it only when that epoch is not the last, else it is ``test``.
SPLITS = {
    "test": ("test", "test_summary"),
    "val": ("val", "val_summary"),
    "test-at-best": ("test_at_best", "test_at_best_summary"),
}

CONVENTIONS = ("task", "metric")


# -- runs ------------------------------------------------------------------------
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
    config = load_toml(path / "config.toml")
    results = _read_json(path / "results.json")
    missing = [k for k in ("dataset", "strategy", "tasks", "higher_is_better") if not isinstance(results, dict)
               or k not in results]
    if missing:
        raise ConfigError(f"{path / 'results.json'} is not an mtlx results file (missing {', '.join(missing)})")
    return Run(path=path, config=config, results=results, records=_read_records(path / "metrics.jsonl"))


def find_runs(paths: Iterable[str | Path], skip: Callable[[str], None] | None = None) -> list[Run]:
    """Load each run directory; a directory that holds run directories (not itself a run) stands for them.

    A folder that is not a run, or a run that has not finished (no results.json), is skipped with one
    line to ``skip`` (default: a warning) so that one stale folder does not stop a report of the rest;
    a :class:`ConfigError` only when nothing is left to report.
    """
    skip = skip or (lambda line: warnings.warn(line, RuntimeWarning, stacklevel=3))
    candidates: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and not (path / "config.toml").exists():
            inner = sorted(p for p in path.iterdir() if (p / "config.toml").is_file())
            if not inner:
                skip(f"skipping {path}: neither a run directory (no config.toml) nor a folder of runs")
            candidates.extend(inner)
        else:
            candidates.append(path)
    runs = []
    for path in candidates:
        if path.is_dir() and not (path / "results.json").exists():
            skip(f"skipping {path}: an unfinished run (no results.json yet)")
            continue
        runs.append(load_run(path))
    if not runs:
        raise ConfigError(f"no finished run to report in {', '.join(map(str, paths))}")
    return runs


# -- tables ----------------------------------------------------------------------
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


# -- output formats -----------------------------------------------------------------
METRIC_DIGITS = 4
DELTA_DIGITS = 2
_DELTA_HEADERS = {"task": "Δm task % ↑", "metric": "Δm metric % ↑"}
NOTE = (
    "Mean ± sample std over seeds (n). Δm in % vs the single-task baseline, positive = better: "
    "'task' averages within each task first (LibMTL's Δp), 'metric' weighs every metric the same "
    "(Nash-MTL, CAGrad and FAMO publish its negative)."
)


def _display_rows(table: Table) -> list[tuple[str, list[str]]]:
    """(strategy, [label, n, cells...]) per row, the single-task baseline first when the dataset has one."""
    out = []
    if table.baseline:
        cells = [f"{table.baseline[t][m]:.{METRIC_DIGITS}f}" if m in table.baseline.get(t, {}) else "—"
                 for t, m in table.columns]
        out.append(("", ["single-task baseline", "", *cells, f"{0:.{DELTA_DIGITS}f}", f"{0:.{DELTA_DIGITS}f}"]))
    for row in table.rows:
        cells = [row.cells[c].format(METRIC_DIGITS) for c in table.columns]
        cells += [row.delta_m[conv].format(DELTA_DIGITS) for conv in CONVENTIONS]
        out.append((row.strategy, [row.label, str(len(row.runs)), *cells]))
    return out


def _headers(table: Table) -> list[str]:
    return ["strategy", "n", *(table.header(t, m) for t, m in table.columns), *_DELTA_HEADERS.values()]


def to_markdown(tables: Sequence[Table]) -> str:
    """One section per dataset with a pipe table, ready for a paper's appendix or a README."""
    parts = []
    for table in tables:
        lines = [f"## {table.dataset} ({table.split})", "", "| " + " | ".join(_headers(table)) + " |",
                 "|" + "|".join([":---", "---:", *["---:"] * (len(table.columns) + 2)]) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for _, cells in _display_rows(table)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + f"\n\n{NOTE}\n"


def to_csv(table: Table) -> str:
    """One dataset, full precision: ``<quantity>.mean`` and ``<quantity>.std`` columns per metric and Delta_m."""
    quantities = [f"{t}.{m}" for t, m in table.columns] + [f"delta_m_{c}" for c in CONVENTIONS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "split", "strategy", "label", "n", "seeds",
                     *(f"{q}.{s}" for q in quantities for s in ("mean", "std"))])

    def numbers(stats: Iterable[Stat]) -> list[str]:
        return [repr(v) if not math.isnan(v) else "" for s in stats for v in (s.mean, s.std)]

    if table.baseline:
        base = [Stat([table.baseline.get(t, {}).get(m)]) for t, m in table.columns] + [Stat([0.0])] * 2
        writer.writerow([table.dataset, table.split, "baseline", "single-task baseline", "", "", *numbers(base)])
    for row in table.rows:
        stats = [row.cells[c] for c in table.columns] + [row.delta_m[c] for c in CONVENTIONS]
        writer.writerow([table.dataset, table.split, row.strategy, row.label, len(row.runs),
                         " ".join(map(str, row.seeds)), *numbers(stats)])
    return buffer.getvalue()


def to_rich(table: Table) -> Any:
    """A rich table; a rule separates strategies."""
    from rich.table import Table as RichTable

    out = RichTable(title=f"{table.dataset} ({table.split})", title_justify="left")
    for i, header in enumerate(_headers(table)):
        out.add_column(header, justify="left" if i == 0 else "right", style="bold" if i == 0 else None,
                       overflow="fold")
    rows = _display_rows(table)
    for i, (strategy, cells) in enumerate(rows):
        following = rows[i + 1][0] if i + 1 < len(rows) else None
        out.add_row(*cells, style="dim" if not strategy else None, end_section=strategy != following)
    return out


# -- plots -----------------------------------------------------------------------
def require_matplotlib() -> tuple[type, type]:
    """(Figure, FigureCanvasAgg), or a :class:`ConfigError` saying how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'mtlx[report]' (or pip install matplotlib), "
                          "or pass --no-plots") from None
    return Figure, FigureCanvasAgg


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on its own Agg canvas (no pyplot state, no global backend change)."""
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _series(run: Run, field: str, task: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``field`` (``losses``/``weights``) for ``task``: train records, else epoch means."""
    train = [r for r in run.records if r.get("event") == "train" and (r.get(field) or {}).get(task) is not None]
    if not train and field == "losses":
        epochs = [r for r in run.records if r.get("event") == "epoch" and task in (r.get("mean_losses") or {})]
        return [r["step"] for r in epochs], [r["mean_losses"][task] for r in epochs]
    return [r["step"] for r in train], [r[field][task] for r in train]


def plot_keys(table: Table) -> list[str]:
    """Short keys of the rows in plots (``R1``, ``R2``, ...): long labels go in the key table, not on axes."""
    return [f"R{i + 1}" for i in range(len(table.rows))]


def _legend_labels(table: Table, width: int = 44) -> list[str]:
    """``R1 label (n=3)`` per row, shortened to ``width`` (report.md's plot keys hold the full labels)."""
    return [f"{key} " + textwrap.shorten(f"{row.label} (n={len(row.runs)})", width, placeholder="…")
            for key, row in zip(plot_keys(table), table.rows, strict=True)]


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (the first values average what there is)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _plot_per_task(table: Table, field: str, ylabel: str, title: str, path: Path) -> Path | None:
    """One panel per task; per row the mean over seeds (smoothed) and the seeds' min-max band.

    Rows are keyed R1, R2, ... with the full labels in a key table beside the panels, so ten long
    labels (a sweep) never cover the curves. None when no run logged ``field``.
    """
    tasks = list(dict.fromkeys(t for t, _ in table.columns))
    series = {(i, t): [_series(run, field, t) for run in row.runs] for i, row in enumerate(table.rows) for t in tasks}
    if not any(steps for runs in series.values() for steps, _ in runs):
        return None
    keys = plot_keys(table)
    fig = new_figure(3.6 * len(tasks) + 3.6, 3.4)
    grid = fig.add_gridspec(1, len(tasks) + 1, width_ratios=[1.0] * len(tasks) + [1.3])
    for j, task in enumerate(tasks):
        ax = fig.add_subplot(grid[0, j])
        for i, key in enumerate(keys):
            runs = [(steps, values) for steps, values in series[(i, task)] if steps]
            if not runs:
                continue
            length = min(len(steps) for steps, _ in runs)
            steps = runs[0][0][:length]
            window = max(1, length // 40)
            curves = [_smooth(values[:length], window) for _, values in runs]
            mean = [statistics.fmean(column) for column in zip(*curves, strict=True)]
            color = f"C{i % 10}"
            ax.plot(steps, mean, color=color, linewidth=1.2, label=key, linestyle="-" if i < 10 else "--")
            if len(curves) > 1:
                ax.fill_between(steps, [min(c) for c in zip(*curves, strict=True)],
                                [max(c) for c in zip(*curves, strict=True)], color=color, alpha=0.15, linewidth=0)
        values = [v for runs in (series[(i, task)] for i in range(len(keys))) for _, vs in runs for v in vs if v > 0]
        if values and max(values) / min(values) > 50:
            ax.set_yscale("log")  # losses that fall by orders of magnitude
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    key_ax = fig.add_subplot(grid[0, len(tasks)])
    key_ax.axis("off")
    handles, shown = fig.axes[0].get_legend_handles_labels()
    full = dict(zip(keys, _legend_labels(table), strict=True))
    key_ax.legend(handles, [full[key] for key in shown], loc="upper left", fontsize=7, frameon=False)
    fig.suptitle(f"{table.dataset}: {title} (mean over seeds, smoothed; band = min-max of seeds)", fontsize=10)
    return save_figure(fig, path)


def _robust_limits(values: Sequence[float]) -> tuple[float, float]:
    """Axis limits holding 0 and every value within 10 robust spreads of the median (MAD, at least 2 points
    of Δm): a failed setting 40 points below the rest is clipped instead of squashing their differences."""
    median = statistics.median(values)
    spread = max(1.4826 * statistics.median(abs(v - median) for v in values), 2.0)
    kept = [v for v in values if abs(v - median) <= 10 * spread]
    low, high = min(kept), max(kept)
    pad = 0.08 * max(high - low, 1.0)
    return min(low, 0.0) - pad, max(high, 0.0) + pad


def _plot_delta_m(table: Table, path: Path) -> Path | None:
    """Horizontal bars: Delta_m of each row in both conventions, error bars = std over seeds.

    Rows read top to bottom as R1, R2, ... with the labels on the axis; a row far outside the others
    (a failed setting) is clipped at the axis edge and its value written there, so it does not squash
    the differences between the rest. None without a baseline.
    """
    if not any(row.delta_m[c].n for row in table.rows for c in CONVENTIONS):
        return None
    keys = plot_keys(table)
    fig = new_figure(9.5, 1.0 + 0.42 * len(table.rows) * len(CONVENTIONS))
    ax = fig.add_subplot(1, 1, 1)
    height = 0.38
    means = [row.delta_m[c].mean for row in table.rows for c in CONVENTIONS if row.delta_m[c].n]
    low, high = _robust_limits(means)
    for k, conv in enumerate(CONVENTIONS):
        stats = [row.delta_m[conv] for row in table.rows]
        ys = [i + (k - 0.5) * height for i in range(len(stats))]
        shown = [min(max(s.mean, low), high) if s.n else 0.0 for s in stats]
        ax.barh(ys, shown, height, label=f"Δm {conv}", color=f"C{k}")
        errors = [s.std if s.n > 1 and low < s.mean < high else 0.0 for s in stats]
        ax.errorbar(shown, ys, xerr=errors, fmt="none", ecolor="black", capsize=2, linewidth=0.8)
        for y, s, x in zip(ys, stats, shown, strict=True):
            if s.n and not low < s.mean < high:
                ax.text(x, y, f" {s.mean:.1f} (clipped) ", va="center", ha="left" if x > 0 else "right", fontsize=7)
    ax.set_yticks(range(len(table.rows)), _legend_labels(table), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(low, high)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Δm (%) vs the single-task baseline, positive = better")
    ax.set_title(f"{table.dataset} ({table.split}): Δm, mean ± std over seeds", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_report(tables: Sequence[Table], out: str | Path, *, plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``<dataset>.csv`` and (with ``plots``) the PNGs into ``out``; return the paths."""
    if plots:
        require_matplotlib()  # before writing anything
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md"]
    keys = [f"Plot keys, {t.dataset}: " + "; ".join(f"{k} = {r.label}" for k, r in zip(plot_keys(t), t.rows, strict=True))
            for t in tables] if plots else []
    written[0].write_text(to_markdown(tables) + "".join(f"\n{line}\n" for line in keys))
    for table in tables:
        name = _slug(table.dataset)
        path = out / f"{name}.csv"
        path.write_text(to_csv(table))
        written.append(path)
        if plots:
            made = [
                _plot_per_task(table, "losses", "training loss", "training loss per task", out / f"{name}_loss.png"),
                _plot_per_task(table, "weights", "task weight", "task weights", out / f"{name}_weights.png"),
                _plot_delta_m(table, out / f"{name}_delta_m.png"),
            ]
            written.extend(p for p in made if p is not None)
    return written
