"""Running the ``mtlx`` command line in-process, as tests do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

__all__ = ["assert_refused_at_start_up", "assert_resume_is_exact", "engine_states_on_one_and_two_processes", "invoke_cli"]


def invoke_cli(*args: object, plugins: Mapping[str, object] | None = None) -> Result:
    """``invoke_cli("run", "-d", "toy", ...)`` runs the real CLI in-process and returns click's Result.

    Arguments go through ``str`` (paths and numbers may be passed as they
    are). Exceptions other than the CLI's own errors propagate, so a bug
    shows its traceback instead of only a non-zero exit code. ``plugins``
    (``{name: object with mtlx_* hooks}``) are registered for this invocation
    only, after the installed ones, as ``pytest.main(plugins=...)`` does.
    """
    from mtlx.cli import Invocation, main  # imported on use: the CLI pulls in rich and every subcommand's options

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False,
                              obj=Invocation(extra=dict(plugins or {})))


def assert_refused_at_start_up(result: Result, message: str, run_dir: Path) -> None:
    """Bad input, as every command must treat it: exit 2, one line of output naming ``message``, no ``run_dir``."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not run_dir.exists(), f"a refused start left a run directory: {run_dir}"


def assert_resume_is_exact(run_args: list[Any], tmp_path: Path, *, steps: int, interrupt_at: int) -> dict[str, Any]:
    """``mtlx *run_args`` for ``steps`` steps in one go equals ``interrupt_at`` steps, then ``--resume`` to ``steps``
    (the same test metrics); returns the uninterrupted run's results.json."""
    full, part = tmp_path / "full", tmp_path / "part"
    for out, count in [(full, steps), (part, interrupt_at)]:
        result = invoke_cli(*run_args, "--max-steps", count, "--out", out)
        assert result.exit_code == 0, result.output
    resumed = invoke_cli("run", "--resume", part, "--max-steps", steps, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    full_results, part_results = (json.loads((d / "results.json").read_text()) for d in (full, part))
    assert full_results["steps"] == part_results["steps"] == steps
    assert full_results["test"] == part_results["test"]
    return full_results


def engine_states_on_one_and_two_processes(
    run_args: Sequence[Any], tmp_path: Path, *, batch_size: int = 4
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``python -m mtlx *run_args`` on one process with ``--batch-size batch_size``, then under torchrun on two
    with half of it each (the same global batch): each run's saved engine state, for "2 processes = 1" tests."""
    from mtlx.checkpoint import load_checkpoint

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    states = []
    for nproc in (1, 2):
        out = tmp_path / f"nproc{nproc}"
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else []
        command = [sys.executable, *launch, "-m", "mtlx", *map(str, run_args), "--batch-size", str(batch_size // nproc),
                   "--out", str(out)]
        done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        states.append(load_checkpoint(out / "last.pt")["engine"])
    return states[0], states[1]
