"""The tables as text: rich (the terminal), Markdown (READMEs), LaTeX (booktabs, papers) and CSV (full precision).

Markdown, LaTeX and rich show the same cells (:func:`_display_rows`); LaTeX escapes them.
"""

from __future__ import annotations

import csv
import io
import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from .stats import SIGNIFICANCE, Comparison
from .tables import CONVENTIONS, Stat, Table

__all__ = ["NOTE", "note", "to_csv", "to_latex", "to_markdown", "to_rich"]

METRIC_DIGITS = 4
DELTA_DIGITS = 2
_DELTA_HEADERS = {"task": "Δm task % ↑", "metric": "Δm metric % ↑"}
NOTE = (
    "Mean ± sample std over seeds (n). Δm in % vs the single-task baseline, positive = better: "
    "'task' averages within each task first (LibMTL's Δp), 'metric' weighs every metric the same "
    "(Nash-MTL, CAGrad and FAMO publish its negative). 95 % CI: the t-interval of Δm's mean over the seeds "
    "(n - 1 degrees of freedom). Mean rank: each row's rank on each metric (1 = best, ties share), averaged "
    "over the metrics. — : undefined (one seed)."
)


def note(tables: Sequence[Table]) -> str:
    """:data:`NOTE`, and how the rows were tested when there is a reference row."""
    tested = next((t for t in tables if t.reference is not None), None)
    if tested is None:
        return NOTE
    return NOTE + (
        f" p: two-sided t-test of Δm {tested.test_on} against the reference row, paired by seed "
        "(scipy.stats.ttest_rel) where a row ran exactly the reference's seeds, else Welch's "
        f"(scipy.stats.ttest_ind, equal_var=False); * p < {SIGNIFICANCE}."
    )


def _interval(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.{DELTA_DIGITS}f}, {ci[1]:.{DELTA_DIGITS}f}]" if ci else "—"


def _p_value(versus: Comparison | None) -> str:
    if versus is None or versus.p is None:
        return "—"
    text = f"{versus.p:.3f}" if versus.p >= 0.001 else "<0.001"
    return f"{text} *" if versus.significant else text


def _display_rows(table: Table) -> list[tuple[str, list[str]]]:
    """(strategy, [label, n, cells...]) per row, the single-task baseline first when the dataset has one."""
    out = []
    tests = 2 if table.reference is not None else 0
    if table.baseline:
        cells = [f"{table.baseline[t][m]:.{METRIC_DIGITS}f}" if m in table.baseline.get(t, {}) else "—"
                 for t, m in table.columns]
        zero = f"{0:.{DELTA_DIGITS}f}"
        out.append(("", ["single-task baseline", "", *cells, zero, zero, "—", "—", "—", *["—"] * tests]))
    for row in table.rows:
        cells = [row.cells[c].format(METRIC_DIGITS) for c in table.columns]
        cells += [row.delta_m[conv].format(DELTA_DIGITS) for conv in CONVENTIONS]
        cells += [_interval(row.delta_ci[conv]) for conv in CONVENTIONS]
        cells.append("—" if row.mean_rank is None else f"{row.mean_rank:.2f}")
        if row.label == table.reference:
            cells += ["reference", "—"]
        elif tests:
            cells += [_p_value(row.versus), row.versus.test if row.versus and row.versus.p is not None else "—"]
        out.append((row.strategy, [row.label, str(len(row.runs)), *cells]))
    return out


def _headers(table: Table) -> list[str]:
    headers = ["strategy", "n", *(table.header(t, m) for t, m in table.columns), *_DELTA_HEADERS.values(),
               *(f"Δm {conv} 95 % CI" for conv in CONVENTIONS), "mean rank ↓"]
    if table.reference is not None:
        headers += [f"p vs {table.reference} (Δm {table.test_on})", "test"]
    return headers


def to_markdown(tables: Sequence[Table]) -> str:
    """One section per dataset with a pipe table, ready for a paper's appendix or a README."""
    parts = []
    for table in tables:
        headers = _headers(table)
        lines = [f"## {table.dataset} ({table.split})", "", "| " + " | ".join(headers) + " |",
                 "|" + "|".join([":---", *["---:"] * (len(headers) - 1)]) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for _, cells in _display_rows(table)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + f"\n\n{note(tables)}\n"


_LATEX = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                        "<": r"$<$", ">": r"$>$", "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
                        "Δ": r"$\Delta$", "—": "---", "−": r"$-$"})


def _latex(text: str) -> str:
    """``text`` as LaTeX: special characters escaped, a number's minus sign in math mode."""
    return re.sub(r"(?<![\w.])-(?=\d)", "−", text).translate(_LATEX)


def to_latex(table: Table) -> str:
    """One dataset as a booktabs ``tabular`` (``\\usepackage{booktabs}``), the notes above it as a caption to
    copy (LaTeX comments)."""
    headers = _headers(table)
    lines = [f"% {_latex(table.dataset)} ({table.split}), written by mtlx report; needs \\usepackage{{booktabs}}.",
             "% A caption:", *(f"% {line}" for line in textwrap.wrap(_latex(note([table])), 110)),
             "\\begin{tabular}{l" + "r" * (len(headers) - 1) + "}", r"\toprule",
             " & ".join(map(_latex, headers)) + r" \\", r"\midrule"]
    for strategy, cells in _display_rows(table):
        lines.append(" & ".join(map(_latex, cells)) + r" \\")
        if not strategy:  # the single-task baseline, set apart from the settings
            lines.append(r"\midrule")
    lines += [r"\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """One dataset, full precision: ``<quantity>.mean`` and ``<quantity>.std`` columns per metric and Delta_m,
    Delta_m's interval, the mean rank and the test against the reference row (``difference``: the row's mean
    Delta_m minus the reference's), empty where undefined."""
    quantities = [f"{t}.{m}" for t, m in table.columns] + [f"delta_m_{c}" for c in CONVENTIONS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "split", "strategy", "label", "n", "seeds",
                     *(f"{q}.{s}" for q in quantities for s in ("mean", "std")),
                     *(f"delta_m_{c}.ci_{end}" for c in CONVENTIONS for end in ("low", "high")),
                     "mean_rank", "reference", "test", "test_on", "difference", "p_value", "significant"])

    def number(value: float | None) -> str:
        return "" if value is None or math.isnan(value) else repr(value)

    def numbers(stats: Iterable[Stat]) -> list[str]:
        return [number(v) for s in stats for v in (s.mean, s.std)]

    reference = table.reference or ""
    test_on = f"delta_m_{table.test_on}" if table.reference else ""
    if table.baseline:
        base = [Stat([table.baseline.get(t, {}).get(m)]) for t, m in table.columns] + [Stat([0.0])] * 2
        writer.writerow([table.dataset, table.split, "baseline", "single-task baseline", "", "", *numbers(base),
                         *[""] * (2 * len(CONVENTIONS) + 1), reference, "", "", "", "", ""])
    for row in table.rows:
        stats = [row.cells[c] for c in table.columns] + [row.delta_m[c] for c in CONVENTIONS]
        ci = [number(v) for c in CONVENTIONS for v in (row.delta_ci[c] or (None, None))]
        versus = row.versus
        if row.label == table.reference:
            test = ["reference", test_on, "0.0", "", ""]
        elif versus is not None and versus.p is not None:
            test = [versus.test, test_on, number(versus.difference), number(versus.p),
                    "yes" if versus.significant else "no"]
        else:
            test = ["", test_on, "" if versus is None else number(versus.difference), "", ""]
        writer.writerow([table.dataset, table.split, row.strategy, row.label, len(row.runs),
                         " ".join(map(str, row.seeds)), *numbers(stats), *ci, number(row.mean_rank), reference,
                         *test])
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
