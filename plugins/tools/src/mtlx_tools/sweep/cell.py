"""One cell's job: ``python -m mtlx_tools.sweep.cell SWEEP_DIR KEY [--threads N]``.

Runs ``mtlx run`` for the cell (its config from the manifest, ``--out SWEEP_DIR/runs/KEY``) and exits with
its exit code. It may be run again at any time and continues where the last attempt stopped: a finished
run is left as it is, one with a ``last.pt`` is resumed from it (``mtlx run --resume``, bit-identical to an
uninterrupted run), and the files of an attempt killed before its first checkpoint are removed so that the
run starts afresh. A run directory holding a run of other settings is refused (exit 4).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from mtlx.errors import CheckpointError, MtlxError
from mtlx.runner import RUN_FILES

from .cells import PLACEMENT_KEYS
from .manifest import Manifest, check_run_dir, run_dir

__all__ = ["MODULE", "command", "main"]

MODULE = "mtlx_tools.sweep.cell"

#: What an attempt that left no ``last.pt`` may have written (``results.json`` only comes with a ``last.pt``).
_PARTIAL = tuple(f for f in (*RUN_FILES, "resumes.jsonl") if f not in ("last.pt", "results.json"))


def command(sweep_dir: Path, key: str, threads: int | None = None) -> tuple[str, ...]:
    """The job's argv, with the interpreter running this process."""
    return (sys.executable, "-m", MODULE, str(sweep_dir.resolve()), key,
            *(("--threads", str(threads)) if threads else ()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("key")
    parser.add_argument("--threads", type=int, help="CPU threads of the run (mtlx run --threads)")
    args = parser.parse_args(argv)
    try:
        manifest = Manifest.read(args.sweep_dir)
        if manifest is None or args.key not in manifest.cells:
            raise CheckpointError(f"{args.sweep_dir} has no sweep cell {args.key!r} (is it a sweep directory?)")
        config = manifest.cells[args.key].config
        run = run_dir(args.sweep_dir, args.key)
        check_run_dir(run, config)
    except MtlxError as error:
        print(f"Error: {error}", file=sys.stderr)
        return error.exit_code
    if (run / "results.json").is_file():
        print(f"{args.key}: finished already, nothing to do")
        return 0
    prefix = [arg for p in manifest.plugins for arg in ("--plugin", p)]
    prefix += [arg for b in manifest.blocked for arg in ("--no-plugin", b)]
    prefix += ["run", "-q", *(["--threads", str(args.threads)] if args.threads else [])]
    with tempfile.TemporaryDirectory(prefix="mtlx-sweep-cell-") as tmp:
        settings = Path(tmp) / "config.toml"
        if (run / "last.pt").is_file():
            print(f"{args.key}: resuming from {run / 'last.pt'}", flush=True)
            # where and how it runs may have moved (threads, data root): mtlx run lets those change on resume
            settings.write_text(tomli_w.dumps(_nested({k: v for k, v in config.items() if k in PLACEMENT_KEYS})))
            return _mtlx([*prefix, "--resume", str(run), "--config", str(settings)])
        removed = [name for name in _PARTIAL if (run / name).is_file()]
        for name in removed:
            (run / name).unlink()
        print(f"{args.key}: starting" + (f" afresh (removed {', '.join(removed)} of an attempt that left no "
                                         "checkpoint)" if removed else ""), flush=True)
        settings.write_text(tomli_w.dumps(_nested(config)))
        return _mtlx([*prefix, "--config", str(settings), "--out", str(run)])


def _nested(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    return nested


def _mtlx(args: list[str]) -> int:
    """``mtlx ARGS`` in this process; its exit code."""
    from mtlx.cli import main as mtlx_main

    try:
        mtlx_main.main(args=args, prog_name="mtlx")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
