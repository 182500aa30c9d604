"""`mtlx run --strategy rep-mtl` end to end: options reach the strategy, diagnostics reach the log."""

from __future__ import annotations

import json

import pytest

from mtlx_testing import invoke_cli


@pytest.fixture
def run():
    """Invoke ``mtlx`` in-process (each invocation loads its own plugins)."""
    return invoke_cli


def _train_records(out):
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == "train"]


def test_toy_run_with_another_base(run, tmp_path):
    """On the core's toy plugin, base and regulariser options are applied and every step logs the regularisers."""
    out = tmp_path / "run"
    result = run(
        "--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "rep-mtl", "-q", "--epochs", "1", "--out",
        str(out), "-o", "dataset.num_tasks=3", "-o", "train.log_every=1", "-o", "strategy.base=toy-weighted",
        "-o", "strategy.csa_denominator=infonce", "-o", "strategy.lambda_csa=1.1", "-o", "strategy.mode=paper",
    )
    assert result.exit_code == 0, result.output
    records = _train_records(out)
    assert len(records) == 4  # 16 samples, batch 4
    for r in records:
        assert r["weights"] == {"seg0": 1.0, "reg1": 2.0, "seg2": 3.0}
        assert {"tsr", "entropy_normalized", "csa", "positive_sim", "negative_sim"} <= set(r["diagnostics"])
        assert 0.0 <= r["diagnostics"]["entropy_normalized"] <= 1.0
    assert "csa_denominator = \"infonce\"" in (out / "config.toml").read_text()


def test_single_task_is_refused_before_training(run, tmp_path):
    result = run(
        "--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "rep-mtl", "-q", "--out", str(tmp_path / "r"),
        "-o", "dataset.num_tasks=1",
    )
    assert result.exit_code == 2
    assert "Rep-MTL needs >= 2 tasks" in result.output


def test_unknown_base_option_is_a_config_error(run, tmp_path):
    result = run(
        "--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "rep-mtl", "-q", "--out", str(tmp_path / "r"),
        "-o", "strategy.base_options={tau=2.0}",
    )
    assert result.exit_code == 2
    assert "rep-mtl base 'ew' has no option 'tau'" in result.output


@pytest.mark.slow
def test_digits_end_to_end(run, tmp_path):
    """The default dataset trains with rep-mtl (a tiny budget) and reports test metrics."""
    out = tmp_path / "digits"
    result = run(
        "run", "--strategy", "rep-mtl", "--dataset", "digits", "-q", "--epochs", "1", "--max-steps", "2",
        "--batch-size", "8", "--device", "cpu", "--out", str(out), "-o", "dataset.train_size=32",
        "-o", "dataset.val_size=16", "-o", "dataset.test_size=16", "-o", "train.log_every=1",
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["strategy"] == "rep-mtl" and results["steps"] == 2
    assert set(results["test"]) == {"seg", "depth", "cls"}
    assert all("csa" in r["diagnostics"] for r in _train_records(out))
