"""BatchNorm under data parallelism on CPU: torch has no SyncBatchNorm there, so statistics are per process.

The equality of 2 processes and 1 on the global batch (tests/engine/test_distributed.py) holds for models without
BatchNorm; this test pins the documented difference for a model with it (digits' default), so the README's claim
changes together with the code if CPU BatchNorm is ever synchronised.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from mtlx.checkpoint import load_checkpoint

DIGITS = ["run", "-d", "digits", "-s", "ew", "-q", "--threads", "1", "--max-steps", "8",
          "-o", "dataset.train_size=256", "-o", "dataset.val_size=64", "-o", "dataset.test_size=64"]


def _run(*args: str) -> dict[str, torch.Tensor]:
    out = args[args.index("--out") + 1]
    done = subprocess.run([sys.executable, "-m", "mtlx", *args], check=False, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return load_checkpoint(f"{out}/last.pt")["engine"]["model"]


@pytest.mark.slow
def test_distributed_batchnorm_statistics_are_per_process_on_cpu(tmp_path):
    pytest.importorskip("mtlx_digits", reason="the BatchNorm model comes from mtlx-digits")
    one = _run(*DIGITS, "--batch-size", "64", "--out", str(tmp_path / "one"))
    two = _run(*DIGITS, "--batch-size", "32", "--nproc", "2", "--out", str(tmp_path / "two"))
    running = [k for k in one if k.endswith("running_mean")]
    assert running, "digits' default model has no BatchNorm any more: pick another model for this test"
    assert max(float((one[k] - two[k]).abs().max()) for k in running) > 1e-3  # rank 0's half-batch statistics
    others = [k for k in one if "running" not in k and "num_batches" not in k]
    assert max(float((one[k] - two[k]).abs().max()) for k in others) > 1e-4  # normalised with them, too
