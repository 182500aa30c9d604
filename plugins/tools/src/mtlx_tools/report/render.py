"""The tables as text: rich (the terminal), Markdown (papers, READMEs) and CSV (full precision)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .tables import CONVENTIONS, Stat, Table

__all__ = ["NOTE", "to_csv", "to_markdown", "to_rich"]

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
