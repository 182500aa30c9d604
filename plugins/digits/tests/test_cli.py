"""End to end: ``mtlx run --dataset digits`` with a tiny budget writes a complete run directory."""

from __future__ import annotations

import json
import tomllib

import pytest
from click.testing import CliRunner

import mtlx.cli
from mtlx.metrics import delta_m
from mtlx_digits import dataset as dataset_module

TINY = ["-o", "dataset.train_size=32", "-o", "dataset.val_size=16", "-o", "dataset.test_size=16"]
TINY_OPTIONS = {"seed": 0, "train_size": 32, "val_size": 16, "test_size": 16, "num_digits": [2, 3]}


def invoke(*args: str):
    return CliRunner().invoke(mtlx.cli.main, ["run", "--strategy", "ew", "--dataset", "digits", *args])


def test_run_writes_config_metrics_checkpoints_and_results_with_delta_m(tmp_path, monkeypatch):
    baseline = {"seg": {"miou": 0.5, "pixacc": 0.9}, "depth": {"abs_err": 0.3, "rel_err": 0.1}, "cls": {"acc": 0.8}}
    monkeypatch.setattr(dataset_module, "_stored_baseline", lambda: {"dataset": TINY_OPTIONS, "results": baseline})
    run_dir = tmp_path / "run"
    result = invoke(*TINY, "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--quiet", "--out", str(run_dir))
    assert result.exit_code == 0, result.output
    assert {p.name for p in run_dir.iterdir()} >= {"config.toml", "metrics.jsonl", "last.pt", "best.pt", "results.json"}

    config = tomllib.loads((run_dir / "config.toml").read_text())
    # the options given, and every other one written out at its default (what the run used)
    assert config["dataset"] == {"name": "digits", **TINY_OPTIONS, "tasks": ["seg", "depth", "cls"]}
    assert (config["backbone"]["name"], config["head"]["name"], config["arch"]["name"]) == ("digits-cnn", "conv", "hps")

    events = [json.loads(line)["event"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "eval" in events and "epoch" in events

    results = json.loads((run_dir / "results.json").read_text())
    assert results["tasks"] == ["seg", "depth", "cls"] and results["steps"] == 2
    assert results["baseline"] == baseline
    assert set(results["test"]["seg"]) == {"miou", "pixacc"} and set(results["test"]["depth"]) == {"abs_err", "rel_err"}
    expected = delta_m(results["test"], baseline, results["higher_is_better"], "task")
    assert results["test_summary"]["delta_m_task"] == pytest.approx(expected)
    assert "Delta_m" in result.output


def test_task_subset_trains_a_single_task_model(tmp_path):
    run_dir = tmp_path / "seg-only"
    result = invoke(
        *TINY, "-o", "dataset.tasks=seg", "--epochs", "1", "--batch-size", "32", "--quiet", "--out", str(run_dir)
    )
    assert result.exit_code == 0, result.output
    results = json.loads((run_dir / "results.json").read_text())
    assert results["tasks"] == ["seg"] and list(results["test"]) == ["seg"]


def test_bad_dataset_option_is_one_line_and_nonzero(tmp_path):
    result = invoke(*TINY, "-o", "dataset.tasks=seg,dpth", "--out", str(tmp_path / "bad"))
    assert result.exit_code == 2
    assert "unknown task 'dpth'; did you mean 'depth'" in result.output
    assert "Traceback" not in result.output
