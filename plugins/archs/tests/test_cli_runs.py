"""CGC, PLE, DSelect-k and LTB through ``mtlx run`` on digits: they train with ew, and Rep-MTL is refused at start-up.

LTB's temperature schedule comes from the run's epochs (this plugin's engine
handler), so its runs also check that the branching logits stay untouched
through the warm-up epoch, move after it, and that a run resumed mid-epoch
ends bit for bit where the uninterrupted one does.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from mtlx_testing import invoke_cli

NEW = ["cgc", "ple", "dselect-k", "ltb"]
TINY = ["-d", "digits", "--threads", "1", "-q", "--batch-size", "32", "--seed", "0",
        "-o", "dataset.train_size=128", "-o", "dataset.val_size=32", "-o", "dataset.test_size=32"]  # fmt: skip


def _run(out, *args):
    result = invoke_cli("run", *TINY, "--out", out, *args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


LTB_TWO_EPOCHS = ["-s", "ew", "--arch", "ltb", "--epochs", "2"]


@pytest.fixture(scope="module")
def ltb_full(tmp_path_factory):
    """Two uninterrupted epochs of LTB (8 steps)."""
    out = tmp_path_factory.mktemp("ltb") / "full"
    return out, _run(out, *LTB_TWO_EPOCHS)


def _model_state(out):
    return torch.load(out / "last.pt", weights_only=False)["engine"]["model"]


@pytest.mark.parametrize("arch", NEW)
def test_one_digits_epoch_with_ew(tmp_path, arch):
    results = _run(tmp_path / arch, "-s", "ew", "--arch", arch, "--epochs", "1")
    assert results["steps"] == 4
    values = [v for task in results["test"].values() for v in task.values()]
    assert values and all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("arch", NEW)
def test_rep_mtl_is_refused_in_one_line_before_anything_is_written(tmp_path, arch):
    result = invoke_cli("run", *TINY, "-s", "rep-mtl", "--arch", arch, "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"architecture '{arch}' has none; use one of: hps, saliency-decoder" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        ("arch.num_experts=6", "num_experts must be a power of two >= 2 (the gate's binary encoding), got 6"),
        ("arch.num_nonzeros=0", "'num_nonzeros' must be >= 1: 0"),
    ],
)
def test_dselect_k_bad_options_are_refused_in_one_line(tmp_path, option, message):
    result = invoke_cli("run", *TINY, "--arch", "dselect-k", "-o", option, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: invalid option for architecture 'dselect-k': {message}"]
    assert not (tmp_path / "run").exists()


def test_ltb_learns_its_branching_after_the_warm_up_epoch(tmp_path, ltb_full):
    """Epoch 0 of 2 is warm-up (every parent summed: alpha unused), epoch 1 samples at tau = 2/20/sqrt(2)."""
    _run(tmp_path / "one", *LTB_TWO_EPOCHS[:-1], "1")
    assert torch.equal(_model_state(tmp_path / "one")["alpha"], torch.ones(2, 3, 3))
    assert not torch.equal(_model_state(ltb_full[0])["alpha"], torch.ones(2, 3, 3))


def _resume(tmp, stop):
    """Stop LTB's two epochs after ``stop`` steps, resume to the end; the model before and after, the results."""
    part = tmp / "part"
    _run(part, *LTB_TWO_EPOCHS, "--max-steps", str(stop))
    before = _model_state(part)
    resumed = invoke_cli("run", "--resume", part, "--max-steps", "8", "-q", "--threads", "1")
    assert resumed.exit_code == 0, resumed.output
    return before, _model_state(part), json.loads((part / "results.json").read_text())


def _assert_same_run(ltb_full, resumed):
    full_dir, full = ltb_full
    _, state, results = resumed
    assert results["steps"] == full["steps"] == 8
    expected = _model_state(full_dir)
    assert [k for k in expected if not torch.equal(expected[k], state[k])] == []
    assert results["test"] == full["test"]


@pytest.fixture(scope="module")
def ltb_mid_epoch(tmp_path_factory):
    return _resume(tmp_path_factory.mktemp("mid"), 6)


def test_ltb_resumed_at_the_epoch_boundary_matches_the_uninterrupted_run(tmp_path, ltb_full):
    _assert_same_run(ltb_full, _resume(tmp_path, 4))


def test_ltb_resumed_mid_epoch_still_samples_its_branches(ltb_mid_epoch):
    """The handler gives the resumed model its epoch (1 of 2) again: without it, it would fall back to warm-up."""
    before, after, _ = ltb_mid_epoch
    assert not torch.equal(before["alpha"], after["alpha"])


def test_ltb_resumed_mid_epoch_matches_the_uninterrupted_run(ltb_full, ltb_mid_epoch):
    _assert_same_run(ltb_full, ltb_mid_epoch)
