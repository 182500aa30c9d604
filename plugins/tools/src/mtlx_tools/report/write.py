"""``report.md``, ``<dataset>.csv``, ``<dataset>.tex`` and the plots written into one folder."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from .plots import plot_delta_m, plot_keys, plot_per_task, require_matplotlib
from .render import to_csv, to_latex, to_markdown
from .tables import Table

__all__ = ["write_report"]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_report(tables: Sequence[Table], out: str | Path, *, plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``<dataset>.csv``, ``<dataset>.tex`` and (with ``plots``) the PNGs into ``out``;
    return the paths."""
    if plots:
        require_matplotlib()  # before writing anything
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md"]
    keys = [f"Plot keys, {t.dataset}: " + "; ".join(f"{k} = {r.label}" for k, r in zip(plot_keys(t), t.rows, strict=True))
            for t in tables] if plots else []
    written[0].write_text(to_markdown(tables) + "".join(f"\n{line}\n" for line in keys))
    for table in tables:
        name = _slug(table.dataset)
        for path, text in ((out / f"{name}.csv", to_csv(table)), (out / f"{name}.tex", to_latex(table))):
            path.write_text(text)
            written.append(path)
        if plots:
            made = [
                plot_per_task(table, "losses", "training loss", "training loss per task", out / f"{name}_loss.png"),
                plot_per_task(table, "weights", "task weight", "task weights", out / f"{name}_weights.png"),
                plot_delta_m(table, out / f"{name}_delta_m.png"),
            ]
            written.extend(p for p in made if p is not None)
    return written
