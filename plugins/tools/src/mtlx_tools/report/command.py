"""``mtlx report``: tables (rich, Markdown, CSV) and plots across finished runs."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from .render import to_csv, to_markdown, to_rich
from .runs import SPLITS, find_runs
from .tables import build_tables
from .write import write_report

__all__ = ["report"]


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("report"), show_default=True,
              help="Where report.md, <dataset>.csv and the PNG plots go.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table", show_default=True,
              help="What is printed to stdout (the files are always written).")
@click.option("--split", type=click.Choice(list(SPLITS)), default="test", show_default=True,
              help="Results to tabulate; test-at-best = test metrics of the best validation epoch.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots (no matplotlib needed).")
def report(run_dirs: tuple[Path, ...], out: Path, fmt: str, split: str, no_plots: bool) -> None:
    """Per-task metrics and Delta_m, mean ± std over seeds, one table per dataset.

    Runs with the same dataset, strategy and config (all but train.seed and
    settings such as the device) are the seeds of one row. A RUN_DIR that
    holds run directories stands for all of them. Plots: training loss and
    task weights per task over steps, and a Delta_m bar chart.

    \b
    Examples:
      mtlx report runs/*                      # every run under runs/
      mtlx report runs --format markdown --out paper/tables
    """
    tables = build_tables(find_runs(run_dirs, skip=lambda line: click.echo(f"Warning: {line}", err=True)), split)
    written = write_report(tables, out, plots=not no_plots)
    if fmt == "table":
        console = Console(soft_wrap=True)
        for table in tables:
            console.print(to_rich(table))
        console.print("Mean ± sample std over n seeds; Δm in % vs the single-task baseline, positive = better.")
    elif fmt == "markdown":
        click.echo(to_markdown(tables), nl=False)
    else:
        click.echo("\n".join(to_csv(t) for t in tables), nl=False)
    notes = Console(stderr=True, soft_wrap=True)
    for table in tables:
        for row in table.rows:
            if len(set(row.seeds)) < len(row.seeds):
                notes.print(f"[yellow]note:[/] {table.dataset} / {row.label} has runs with the same seed "
                            f"({', '.join(str(r.path) for r in row.runs)})")
    notes.print(f"wrote {', '.join(str(p) for p in written)}", markup=False)
