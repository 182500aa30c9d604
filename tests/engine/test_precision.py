"""Mixed precision: bf16 autocast and fp16 autocast + GradScaler train to (nearly) the fp32 result."""

from __future__ import annotations

import warnings

import pytest
import torch

from mtlx.checkpoint import load_checkpoint

RUN = ("run", "-d", "toy", "-s", "toy-weighted", "-q", "--epochs", "2", "-o", "train.lr=0.01")


@pytest.mark.parametrize(("precision", "tolerance"), [("bf16", 0.05), ("fp16", 0.01)])
def test_autocast_precisions_follow_fp32(cli, tmp_path, precision, tolerance):
    assert cli(*RUN, "--out", str(tmp_path / "fp32")).exit_code == 0
    result = cli(*RUN, "--precision", precision, "--out", str(tmp_path / precision))
    assert result.exit_code == 0, result.output
    ref = load_checkpoint(tmp_path / "fp32" / "last.pt")["engine"]
    amp = load_checkpoint(tmp_path / precision / "last.pt")["engine"]
    for key, value in ref["model"].items():
        assert amp["model"][key].dtype == value.dtype == torch.float32  # master weights stay fp32
        assert torch.isfinite(amp["model"][key]).all()
        assert torch.allclose(amp["model"][key], value, atol=tolerance, rtol=tolerance), key
    assert (amp["scaler"] is not None) == (precision == "fp16")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_fp16_on_a_cpu_warns_that_it_is_slow(cli, tmp_path, precision):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli(*RUN, "--epochs", "1", "--precision", precision, "--out", str(tmp_path / precision))
    assert result.exit_code == 0, result.output
    slow = [str(w.message) for w in caught if "on a CPU is slow" in str(w.message)]
    assert len(slow) == (precision == "fp16")
    assert all("--precision bf16 or fp32" in m for m in slow)
