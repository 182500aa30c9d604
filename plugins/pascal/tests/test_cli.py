"""``mtlx run --dataset pascal`` end to end on the fixture tree (tiny input, small backbone)."""

from __future__ import annotations

import json

import pytest

from mtlx.hooks import PluginManager
from mtlx.metrics import delta_m
from mtlx_testing import invoke_cli

#: 32x32 inputs, 9 edge thresholds, one epoch of two batches: a few seconds on a CPU.
TINY = (
    "-q",
    "--device",
    "cpu",
    "--epochs",
    "1",
    "--batch-size",
    "2",
    "-o",
    "dataset.size=32",
    "-o",
    "dataset.edge_thresholds=9",
)


#: A small backbone and plain heads instead of the recommended ResNet-18 with ASPP.
SMALL = ("--backbone", "digits-cnn", "--head", "conv")


@pytest.fixture
def run(pascal):
    """``run(strategy, out, ...)`` is ``mtlx run`` of ``strategy`` on the fixture tree into ``out``, with
    :data:`TINY`, in-process (in a fresh plugin manager: the autouse fixture)."""
    return lambda strategy, out, *args: invoke_cli(
        "run", "--strategy", strategy, "--dataset", "pascal", "--data-root", str(pascal.root), "--out", str(out),
        *args, *TINY,
    )


def test_the_plugin_registers_the_pascal_dataset():
    registries = PluginManager().registries
    assert "pascal" in registries.datasets.list()
    assert registries.datasets.entry("pascal").owner.startswith("mtlx-pascal")


def test_ew_run_reports_every_task_and_delta_m_against_stored_baselines(run, pascal, tmp_path):
    stored = {
        "semseg": {"miou": 0.5},
        "parts": {"miou": 0.4},
        "normals": {"mean": 40.0},
        "sal": {"miou": 0.6, "maxf": 0.7},
        "edge": {"odsf": 0.5},
    }
    pascal.path("stl_baselines.json").write_text(json.dumps(stored))
    out = tmp_path / "run"
    result = run("ew", out, *SMALL)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"] == ["semseg", "parts", "normals", "sal", "edge"]
    assert results["val_split"] == "val" and "test" not in results
    val = results["val"]
    assert set(val["normals"]) == {"mean", "rmse", "median", "within_11.25", "within_22.5", "within_30"}
    assert set(val["sal"]) == {"maxf", "miou"} and set(val["edge"]) == {"odsf", "ods_precision", "ods_recall"}
    # Delta_m uses one primary metric per task (sal: miou by default) from the stored file
    primary = {
        "semseg": {"miou": 0.5},
        "parts": {"miou": 0.4},
        "normals": {"mean": 40.0},
        "sal": {"miou": 0.6},
        "edge": {"odsf": 0.5},
    }
    assert results["baseline"] == primary
    expected = delta_m(val, primary, results["higher_is_better"], "task")
    assert results["val_summary"]["delta_m_task"] == pytest.approx(expected)
    assert "Delta_m" in result.output


@pytest.mark.slow
def test_rep_mtl_run_on_a_task_subset_with_the_recommended_resnet18_aspp(run, tmp_path):
    out = tmp_path / "run"
    result = run("rep-mtl", out, "-o", "dataset.tasks=semseg,parts,sal", "-o", "train.log_every=1")
    assert result.exit_code == 0, result.output
    config = (out / "config.toml").read_text()
    assert 'name = "resnet18"' in config and 'name = "deeplab-aspp"' in config
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"] == ["semseg", "parts", "sal"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    assert train and {"tsr", "csa"} <= set(train[-1]["diagnostics"])


def test_rep_mtl_run_with_a_small_backbone(run, tmp_path):
    out = tmp_path / "run"
    result = run("rep-mtl", out, *SMALL, "-o", "dataset.tasks=normals,sal", "-o", "backbone.channels=8")
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 2 and results["tasks"] == ["normals", "sal"]


def test_missing_data_root_is_a_one_line_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MTLX_DATA", raising=False)
    result = invoke_cli("run", "--strategy", "ew", "--dataset", "pascal", "--out", str(tmp_path / "r"), *TINY)
    assert result.exit_code == 5
    assert "dataset 'pascal' needs its files: pass --data-root PATH" in result.output


def test_unknown_task_is_a_config_error(run, tmp_path):
    result = run("ew", tmp_path / "r", "-o", "dataset.tasks=semseg,human_parts")
    assert result.exit_code == 2
    assert "unknown task 'human_parts'" in result.output
