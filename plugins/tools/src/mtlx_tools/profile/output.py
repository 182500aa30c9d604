"""``mtlx profile``'s report on the terminal (``--json`` prints :meth:`ProfileResult.to_dict` instead)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

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
    assert r.times is not None
    title = (f"time per training step (the engine's), batch {r.batch_size}, {r.device}, {r.precision} "
             "(mean ms per mtlx.phases label; per-task-grads and backward are inside strategy)")
    steps = Table(title=title, title_justify="left")
    steps.add_column("strategy", style="bold")
    for column in (*PHASES, *INNER_PHASES, "other", "total"):
        steps.add_column(column.removeprefix("mtlx/"), justify="right")
    rows = [(r.strategy, r.times)] + ([(r.compare, r.compare_times)] if r.compare_times is not None else [])
    for name, t in rows:
        cells = [f"{t.phases[p]:.1f}" for p in (*PHASES, *INNER_PHASES)]
        steps.add_row(name, *cells, f"{t.other:.1f}", f"{t.total:.1f}")
    console.print(steps)
    if r.compare_times is not None:
        extra = r.times.total - r.compare_times.total
        strategy_extra = r.times.phases["mtlx/strategy"] - r.compare_times.phases["mtlx/strategy"]
        console.print(
            f"{r.strategy} costs {extra:+.1f} ms per step over {r.compare} "
            f"({r.times.total / r.compare_times.total:.2f}x; mtlx/strategy {strategy_extra:+.1f} ms)"
        )
