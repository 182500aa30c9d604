"""``mtlx analyze``: analyses of a finished run's weights."""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mtlx.cli import plugin_manager

from .powerlaw import CONV_MODES, PowerLawReport, analyze_run

__all__ = ["analyze", "powerlaw"]


@click.group()
def analyze() -> None:
    """Analyses of a trained run (see each subcommand)."""


def _fmt(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def _print(console: Console, result: PowerLawReport) -> None:
    console.print(f"[bold]power-law analysis[/] of {result.source} (conv weights: {result.conv}; "
                  f"grouping by {result.grouping})", highlight=False)
    layers = Table(title="layers", title_justify="left")
    for name, justify in (("layer", "left"), ("group", "left"), ("shape", "left"), ("eigenvalues", "right"),
                          ("x_min", "right"), ("tail", "right"), ("KS D", "right"), ("α", "right")):
        layers.add_column(name, justify=justify, overflow="fold")
    for f in result.layers:
        layers.add_row(f.name, f.group, "×".join(map(str, f.shape)), str(f.fit.n), f"{f.fit.xmin:.3g}",
                       str(f.fit.n_tail), f"{f.fit.ks_distance:.3f}", f"{f.fit.alpha:.2f} ± {f.fit.sigma:.2f}")
    console.print(layers)
    groups = Table(title="mean α per module group (α in [2, 4]: well trained; > 6: close to random)",
                   title_justify="left")
    for name in ("group", "layers fitted", "skipped", "mean α", "std α"):
        groups.add_column(name, justify="left" if name == "group" else "right")
    for g in result.groups():
        groups.add_row(g.group, str(g.layers), str(g.skipped), _fmt(g.alpha_mean), _fmt(g.alpha_std))
    console.print(groups)
    if result.skipped:
        console.print(f"skipped {len(result.skipped)} weight(s) too small to fit:")
        for s in result.skipped:
            console.print(f"  {s.name} {'×'.join(map(str, s.shape))}: {s.reason}", markup=False)


@analyze.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Choice(["last", "best"]), default="last", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where powerlaw.json and the ESD plots go (default: RUN_DIR/powerlaw-<checkpoint>).")
@click.option("--conv", type=click.Choice(CONV_MODES), default="slices", show_default=True,
              help="Conv weights as kh·kw pooled (out, in) slices (WeightWatcher's ESD, the default), or one (out, in·kh·kw) matrix.")
@click.option("--min-evals", type=click.IntRange(min=2), default=10, show_default=True,
              help="Skip weights with fewer eigenvalues.")
@click.option("--no-plots", is_flag=True, help="Skip the ESD plots (no matplotlib needed).")
@click.pass_context
def powerlaw(ctx: click.Context, run_dir: Path, checkpoint: str, out: Path | None, conv: str, min_evals: int,
             no_plots: bool) -> None:
    """Power-law exponent α of each layer's weight spectrum (HT-SR), per layer and per module group.

    For each weight matrix W the eigenvalues of WᵀW are fitted by a power law
    whose x_min minimises the Kolmogorov–Smirnov distance (as WeightWatcher
    does); α is averaged over the backbone and over each task head.

    \b
    Example:
      mtlx analyze powerlaw runs/nyuv2-rep-mtl --checkpoint best
    """
    result = analyze_run(run_dir, checkpoint=checkpoint, conv=conv, min_evals=min_evals,
                         registries=plugin_manager(ctx).registries)
    written = result.write(out or run_dir / f"powerlaw-{checkpoint}", plots=not no_plots)
    _print(Console(soft_wrap=True), result)
    Console(stderr=True, soft_wrap=True).print(f"wrote {', '.join(map(str, written))}", markup=False)
