"""``mtlx profile``'s report on the terminal (``--json`` prints :meth:`ProfileResult.to_dict` instead)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mtlx.phases import STRATEGY

from .measure import ProfileResult
from .timing import INNER_PHASES, PHASES

__all__ = ["print_result"]


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _flops(n: float) -> str:
    return f"{n / 1e9:,.3f} G" if n >= 1e8 else f"{n / 1e6:,.3f} M"


def print_result(console: Console, r: ProfileResult) -> None:
    title = f"{r.arch} / {r.backbone} / {r.head} on {r.dataset} {r.input_shape}, strategy {r.strategy}"
    console.print(f"[bold]mtlx profile[/] {title}")
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("parameters", f"{r.params_total:,}")
    table.add_row("  shared", f"{r.params_shared:,}")
    for task, n in r.params_per_task.items():
        table.add_row(f"  task {task}", f"{n:,}")
    if r.flops is not None:
        table.add_row("forward FLOPs / sample", _flops(r.flops.total))
        for module, n in sorted(r.flops.by_module.items(), key=lambda kv: -kv[1]):
            table.add_row(f"  {module}", _flops(n))
    console.print(table)
    if r.flops is not None:
        ops = ", ".join(f"{op} {_flops(n)}" for op, n in r.flops.by_operator.items())
        console.print(f"FLOPs by operator: {ops}", markup=False)
        if r.flops.uncounted:
            calls = ", ".join(f"{op} (x{n})" for op, n in r.flops.uncounted.items())
            console.print(f"[yellow]not counted (no FLOP handle):[/] {calls}")
        else:
            console.print("every operator that ran was counted")
    if r.times is not None:
        _print_times(console, r)
    console.print(f"activations saved for backward: {_mib(r.saved_activations_bytes)}")
    console.print(f"peak memory ({r.peak_memory_kind}): {_mib(r.peak_memory_bytes)}")


def _print_times(console: Console, r: ProfileResult) -> None:
    """One row per mtlx.phases label, one column per strategy: as narrow as the strategy names, so no header
    is cut in an 80-column terminal."""
    assert r.times is not None
    console.print(f"time per training step (the engine's), batch {r.batch_size}, {r.device}, {r.precision}, mean ms",
                  markup=False)
    steps = Table(show_edge=False)
    steps.add_column("mtlx.phases label", style="bold", no_wrap=True)
    rows = [(r.strategy, r.times)] + ([(r.compare, r.compare_times)] if r.compare_times is not None else [])
    for name, _ in rows:
        steps.add_column(Text(str(name)), justify="right", no_wrap=True)
    for label in PHASES:
        steps.add_row(label.removeprefix("mtlx/"), *(f"{t.phases[label]:.1f}" for _, t in rows))
        if label == STRATEGY:  # the core's work for the strategy, inside its time
            for inner in INNER_PHASES:
                steps.add_row(f"  {inner.removeprefix('mtlx/')}", *(f"{t.phases[inner]:.1f}" for _, t in rows))
    steps.add_row("other", *(f"{t.other:.1f}" for _, t in rows))
    steps.add_row("total", *(f"{t.total:.1f}" for _, t in rows), style="bold")
    console.print(steps)
    if r.compare_times is not None:
        extra = r.times.total - r.compare_times.total
        strategy_extra = r.times.phases[STRATEGY] - r.compare_times.phases[STRATEGY]
        console.print(
            f"{r.strategy} costs {extra:+.1f} ms per step over {r.compare} "
            f"({r.times.total / r.compare_times.total:.2f}x; mtlx/strategy {strategy_extra:+.1f} ms)",
            markup=False,
        )
