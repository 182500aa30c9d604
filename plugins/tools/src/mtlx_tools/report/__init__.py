"""``mtlx report``: tables and plots across finished runs.

runs (reading run directories) -> tables (seeds pooled into mean ± std) ->
render (rich, Markdown, CSV) and plots, written together by :func:`write_report`.
"""

from .render import to_csv, to_markdown, to_rich
from .runs import NOT_EXPERIMENT, SPLITS, Run, find_runs, load_run
from .tables import Row, Stat, Table, build_tables
from .write import write_report

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
    "to_csv",
    "to_markdown",
    "to_rich",
    "write_report",
]
