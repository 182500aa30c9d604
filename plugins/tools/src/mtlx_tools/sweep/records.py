"""A sweep's small records, for committing beside the tables they produce: ``python -m mtlx_tools.sweep.records``.

Published numbers must be reproducible from the repository, but checkpoints are far too large to commit.
What ``mtlx report`` reads is small: each finished run's ``config.toml``, ``results.json`` and the per-epoch
records of ``metrics.jsonl`` (``epoch``, ``eval`` and ``resume`` events; the per-step ``train`` lines are
dropped), plus the sweep's ``manifest.json`` (the spec, the cells, their states and exit codes).

    python -m mtlx_tools.sweep.records sweeps/repmtl-screen benchmarks/results/repmtl-screen
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from mtlx.checkpoint import atomic_write_text
from mtlx.errors import ConfigError

from .manifest import MANIFEST, Manifest, run_dir

__all__ = ["KEPT_EVENTS", "export_records"]

#: the metrics.jsonl events a report needs (tables and per-epoch curves)
KEPT_EVENTS = ("epoch", "eval", "resume")


def _per_epoch(text: str) -> str:
    lines = [line for line in text.splitlines() if line and json.loads(line).get("event") in KEPT_EVENTS]
    return "".join(f"{line}\n" for line in lines)


def export_records(sweep_dir: Path, dest: Path) -> list[str]:
    """Copy the finished runs' small records of ``sweep_dir`` into ``dest`` (same layout); return their keys.

    Records of runs that are no longer finished, or no longer in the sweep, are removed from ``dest`` so that
    it holds exactly what the manifest says is finished.
    """
    manifest = Manifest.read(sweep_dir)
    if manifest is None:
        raise ConfigError(f"{sweep_dir} is not a sweep directory (no {MANIFEST})")
    finished = sorted(key for key, entry in manifest.cells.items() if entry.state == "finished")
    if (dest / "runs").is_dir():
        for stale in sorted(p for p in (dest / "runs").iterdir() if p.name not in finished):
            shutil.rmtree(stale)
    for key in finished:
        source, target = run_dir(sweep_dir, key), run_dir(dest, key)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.toml", "results.json"):
            atomic_write_text(target / name, (source / name).read_text())
        atomic_write_text(target / "metrics.jsonl", _per_epoch((source / "metrics.jsonl").read_text()))
    atomic_write_text(dest / MANIFEST, (sweep_dir / MANIFEST).read_text())
    return finished


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m mtlx_tools.sweep.records SWEEP_DIR DEST", file=sys.stderr)
        return 2
    try:
        keys = export_records(Path(argv[0]), Path(argv[1]))
    except ConfigError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(f"{len(keys)} finished runs' records in {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
