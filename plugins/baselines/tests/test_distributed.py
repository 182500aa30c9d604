"""MGDA under torchrun (gloo, 2 processes) takes the update of one process on the global batch.

Per-task gradients are averaged across processes before the min-norm
aggregation (``StepContext.shared_grads``), so the direction is the global one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mtlx.checkpoint import load_checkpoint

TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-q", "--epochs", "2"]


def _run(command: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["mgda", "pcgrad", "config", "dualproj", "modo", "sdmgrad", "mtadam",
                                      "metabalance"])
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path, strategy):
    _run([sys.executable, "-m", "mtlx", *TOY, "-s", strategy, "--batch-size", "4", "--out", str(tmp_path / "one")])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "mtlx", *TOY,
          "-s", strategy, "--batch-size", "2", "--out", str(tmp_path / "two")])
    one = load_checkpoint(tmp_path / "one" / "last.pt")["engine"]["model"]
    two = load_checkpoint(tmp_path / "two" / "last.pt")["engine"]["model"]
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5
