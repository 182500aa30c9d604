"""``mtlx report``: the leaderboard (rich, Markdown, LaTeX, CSV) and plots across finished runs."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from mtlx.cli import plugin_manager

from .render import note, to_csv, to_latex, to_markdown, to_rich
from .runs import SPLITS, find_runs
from .tables import CONVENTIONS, build_tables
from .write import write_report

__all__ = ["report"]


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("report"), show_default=True,
              help="Where report.md, <dataset>.csv, <dataset>.tex and the PNG plots go.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "latex"]), default="table",
              show_default=True, help="What is printed to stdout (the files are always written).")
@click.option("--split", type=click.Choice(list(SPLITS)), default="test", show_default=True,
              help="Results to tabulate; test-at-best = test metrics of the best validation epoch.")
@click.option("--reference", metavar="ROW",
              help="Test every row's Delta_m against this row (its label, or a strategy with one row): paired t "
                   "where the seeds match, else Welch's t; p-value and * below 0.05.")
@click.option("--test-on", type=click.Choice(list(CONVENTIONS)), default="task", show_default=True,
              help="The Delta_m convention --reference tests.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots (no matplotlib needed).")
@click.pass_context
def report(ctx: click.Context, run_dirs: tuple[Path, ...], out: Path, fmt: str, split: str, reference: str | None,
           test_on: str, no_plots: bool) -> None:
    """Per-task metrics and Delta_m over seeds: a leaderboard per dataset, one row per setting.

    Runs with the same dataset, strategy and config (all but train.seed and
    settings such as the device or threads) are the seeds of one row. A row's
    label is its strategy plus each option that differs between the dataset's
    rows and is not at its default ("rep-mtl (strategy.temperature=0.3)"; a row
    at every default is just "rep-mtl"): defaults are what mtlx run trains with
    the option unset (the component's config, the dataset's recommendation,
    train's defaults), from the installed plugins; a component whose plugin is
    not installed shows every option that differs, with a warning. Columns: per-task
    metrics and Delta_m in both conventions (mean ± std over seeds), Delta_m's
    95 % t-interval, n, the mean rank over metrics and, with --reference, the
    p-value of a t-test against that row. A RUN_DIR that holds run directories
    (a sweep, a folder of runs, at any depth) stands for all of them. Plots:
    training loss and task weights per task over steps, and a Delta_m bar chart.

    \b
    Examples:
      mtlx report runs/*                      # every run under runs/
      mtlx report sweeps/digits --reference ew --format markdown
      mtlx report runs --format latex --out paper/tables
    """
    def warn(line: str) -> None:
        click.echo(f"Warning: {line}", err=True)

    runs = find_runs(run_dirs, skip=warn)
    tables = build_tables(runs, split, reference=reference, test_on=test_on,
                          registries=plugin_manager(ctx).registries, warn=warn)
    written = write_report(tables, out, plots=not no_plots)
    if fmt == "table":
        console = Console(soft_wrap=True)
        for table in tables:
            console.print(to_rich(table))
        console.print(note(tables), markup=False)
    elif fmt == "markdown":
        click.echo(to_markdown(tables), nl=False)
    elif fmt == "latex":
        click.echo("\n".join(to_latex(t) for t in tables), nl=False)
    else:
        click.echo("\n".join(to_csv(t) for t in tables), nl=False)
    notes = Console(stderr=True, soft_wrap=True)
    for table in tables:
        if reference is not None and table.reference is None:
            notes.print(f"[yellow]note:[/] {escape(table.dataset)} has no row {escape(repr(reference))}: "
                        "its rows are not tested")
        for row in table.rows:
            if len(set(row.seeds)) < len(row.seeds):
                notes.print(f"[yellow]note:[/] {escape(table.dataset)} / {escape(row.label)} has runs with the same "
                            f"seed ({escape(', '.join(str(r.path) for r in row.runs))})")
    notes.print(f"wrote {', '.join(str(p) for p in written)}", markup=False)
