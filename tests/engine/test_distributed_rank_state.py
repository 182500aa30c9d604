"""Per-rank state in checkpoints: each rank's strategy state and RNG states are saved and restored to that rank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtlx.checkpoint import load_checkpoint

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _torchrun(*args: str, extra: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *extra,
               "-m", "mtlx", *args]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), *sys.path]), "OMP_NUM_THREADS": "1",
                   **env}
    return subprocess.run(command, check=False, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_distributed_dwa_restarted_from_last_pt_ends_bit_identical(tmp_path):
    """DWA weighs tasks by each rank's own epoch losses: rank 1 must get its own state back, not rank 0's."""
    pytest.importorskip("mtlx_baselines", reason="DWA comes from mtlx-baselines")
    args = ("--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "dwa", "-q", "--threads", "1",
            "--batch-size", "2", "--epochs", "4", "--checkpoint-every", "3", "-o", "dataset.size=64")  # 16 steps an epoch
    clean = _torchrun(*args, "--out", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr[-3000:]
    killed = _torchrun("--plugin", "killer_plugin", *args, "--out", str(tmp_path / "killed"),
                       extra=("--max-restarts=1",), KILL_STEP="40", KILL_RANK="1")
    assert killed.returncode == 0, killed.stderr[-3000:]
    assert "exitcode: -9" in killed.stderr, "rank 1 was not killed"  # restarted from step 39, mid third epoch
    a, b = (load_checkpoint(tmp_path / name / "last.pt")["engine"]["model"] for name in ("clean", "killed"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
