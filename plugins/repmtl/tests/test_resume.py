"""Exact resume: stopping at any step (mid-epoch or at an epoch boundary) and resuming gives
bit-identical final weights to the uninterrupted run, for ew, rep-mtl and a stateful strategy (dwa)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from mtlx.checkpoint import load_checkpoint
from mtlx.cli import main

RUN = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-q", "--epochs", "3", "-o", "train.eval_every=2"]


def _mtlx(*args: str) -> None:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("strategy", ["ew", "rep-mtl", "dwa"])
def test_interrupt_and_resume_is_bit_identical(tmp_path, strategy):
    _mtlx(*RUN, "-s", strategy, "--out", str(tmp_path / "full"))
    reference = load_checkpoint(tmp_path / "full" / "last.pt")["engine"]
    for stop in (3, 4, 6):  # mid-epoch 1, epoch boundary, mid-epoch 2 (4 steps per epoch)
        out = tmp_path / f"stop{stop}"
        _mtlx(*RUN, "-s", strategy, "--max-steps", str(stop), "--out", str(out))
        assert load_checkpoint(out / "last.pt")["engine"]["state"]["iteration"] == stop
        _mtlx("--plugin", "mtlx_testing.plugin", "run", "--resume", str(out), "-q", "-o", "train.max_steps=1000")
        resumed = load_checkpoint(out / "last.pt")["engine"]
        for key, value in reference["model"].items():
            assert torch.equal(resumed["model"][key], value), (stop, key)
        assert resumed["strategy"].keys() == reference["strategy"].keys()
