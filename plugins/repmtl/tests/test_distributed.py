"""Rep-MTL under torchrun (gloo, 2 processes) equals one process on the concatenated batch.

CSA's negatives are gathered across processes with gradient, TSR is a mean
over positions (averaged by the gradient sync), so the update is the global one.
SGD keeps the comparison about gradients (Adam's first steps turn fp32 noise
around zero gradients into full-size updates).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mtlx.checkpoint import load_checkpoint

TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "rep-mtl", "-q", "--epochs", "1",
       "--max-steps", "3", "-o", "train.optimizer=sgd", "-o", "train.momentum=0.0", "-o", "train.lr=0.001"]


def _run(command: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("options", [[], ["-o", "strategy.mode=paper", "-o", "strategy.csa_tasks=sum"]])
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path, options):
    """Also with CSA summed over tasks at a fixed λ (a mean over the local samples either way)."""
    _run([sys.executable, "-m", "mtlx", *TOY, *options, "--batch-size", "4", "--out", str(tmp_path / "one")])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "mtlx", *TOY,
          *options, "--batch-size", "2", "--out", str(tmp_path / "two")])
    one = load_checkpoint(tmp_path / "one" / "last.pt")["engine"]["model"]
    two = load_checkpoint(tmp_path / "two" / "last.pt")["engine"]["model"]
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5
    first = load_checkpoint(tmp_path / "one" / "last.pt")["engine"]["state"]
    assert first["iteration"] == 3
