"""The report's plots: training loss and task weights per task over steps, and a Delta_m bar chart.

matplotlib's Agg canvas is used on each figure (no pyplot, no global backend);
matplotlib is a dependency of mtlx-tools, imported only when a plot is drawn.
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlx.errors import ConfigError

from .runs import Run
from .tables import CONVENTIONS, Table

__all__ = ["new_figure", "plot_delta_m", "plot_keys", "plot_per_task", "require_matplotlib", "save_figure"]

def require_matplotlib() -> tuple[type, type]:
    """(Figure, FigureCanvasAgg), or a :class:`ConfigError` saying how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install matplotlib (a dependency of mtlx-tools), "
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


def _axis_labels(table: Table, width: int = 44) -> list[str]:
    """``R1 label (n=3)`` per row, wrapped to lines of ``width`` (at most 3): the Δm bars have room for
    the whole label, which is what tells the screen's settings apart."""
    wrap = textwrap.TextWrapper(width, max_lines=3, placeholder="…", break_on_hyphens=False)  # rep-mtl stays whole
    return [wrap.fill(f"{key} {row.label} (n={len(row.runs)})") for key, row in zip(plot_keys(table), table.rows,
                                                                                    strict=True)]


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (the first values average what there is)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_per_task(table: Table, field: str, ylabel: str, title: str, path: Path) -> Path | None:
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


def _robust_limits(values: Sequence[float], errors: Sequence[float] | None = None) -> tuple[float, float]:
    """Axis limits holding 0 and every value within 10 robust spreads of the median (MAD, at least 2 points
    of Δm), with its error bar (``errors``, one per value): a failed setting 40 points below the rest is
    clipped instead of squashing their differences, and no error bar of the rest is cut off."""
    errors = errors if errors is not None else [0.0] * len(values)
    median = statistics.median(values)
    spread = max(1.4826 * statistics.median(abs(v - median) for v in values), 2.0)
    kept = [(v, e) for v, e in zip(values, errors, strict=True) if abs(v - median) <= 10 * spread]
    low, high = min(v - e for v, e in kept), max(v + e for v, e in kept)
    pad = 0.08 * max(high - low, 1.0)
    return min(low, 0.0) - pad, max(high, 0.0) + pad


def plot_delta_m(table: Table, path: Path) -> Path | None:
    """Horizontal bars: Delta_m of each row in both conventions, error bars = std over seeds.

    Rows read top to bottom as R1, R2, ... with the labels on the axis; a row far outside the others
    (a failed setting) is clipped at the axis edge and its value written there, so it does not squash
    the differences between the rest. None without a baseline.
    """
    if not any(row.delta_m[c].n for row in table.rows for c in CONVENTIONS):
        return None
    fig = new_figure(9.5, 1.0 + 0.42 * len(table.rows) * len(CONVENTIONS))
    ax = fig.add_subplot(1, 1, 1)
    height = 0.38
    shown_stats = [row.delta_m[c] for row in table.rows for c in CONVENTIONS if row.delta_m[c].n]
    low, high = _robust_limits([s.mean for s in shown_stats], [s.std if s.n > 1 else 0.0 for s in shown_stats])
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
    ax.set_yticks(range(len(table.rows)), _axis_labels(table), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(low, high)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Δm (%) vs the single-task baseline, positive = better")
    ax.set_title(f"{table.dataset} ({table.split}): Δm, mean ± std over seeds", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)
