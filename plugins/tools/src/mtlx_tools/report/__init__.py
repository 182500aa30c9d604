"""``mtlx report``: tables and plots across finished runs.

runs (reading run directories) -> tables (seeds pooled into mean ± std, with the
statistics of :mod:`.stats`: Delta_m's t-interval, mean rank, t-tests against a
reference row) -> render (rich, Markdown, LaTeX, CSV) and plots, written together
by :func:`write_report`.
"""

from .render import to_csv, to_latex, to_markdown, to_rich
from .runs import NOT_EXPERIMENT, SPLITS, Run, find_runs, load_run
from .stats import Comparison, compare, mean_ranks, t_interval
from .tables import Row, Stat, Table, build_tables
from .write import write_report

__all__ = [
    "NOT_EXPERIMENT",
    "SPLITS",
    "Comparison",
    "Row",
    "Run",
    "Stat",
    "Table",
    "build_tables",
    "compare",
    "find_runs",
    "load_run",
    "mean_ranks",
    "t_interval",
    "to_csv",
    "to_latex",
    "to_markdown",
    "to_rich",
    "write_report",
]
