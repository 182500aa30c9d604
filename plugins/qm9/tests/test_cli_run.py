"""``mtlx run`` on QM9 subsets: the engine batches PyG graphs through the dataset's collate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtlx.cli
from mtlx.config import build_component_config
from mtlx_qm9 import MPNN, QM9Dataset
from mtlx_qm9.targets import TASK_NAMES

from .conftest import write_source


def _run(source: Path, out: Path, strategy: str, *extra: str) -> dict:
    args = [
        "run", "--strategy", strategy, "--dataset", "qm9", "--data-root", str(out.parent / "cache"),
        "-o", f"dataset.source_dir={source}", "--device", "cpu", "--out", str(out), "-q", *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(mtlx.cli.main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "results.json").read_text())


def test_smoke_run_on_sixty_molecules(small_source, tmp_path):
    results = _run(
        small_source, tmp_path / "run", "ew",
        "-o", "dataset.test_size=8", "-o", "dataset.val_size=8", "-o", "backbone.dim=8", "-o", "backbone.edge_hidden=8",
        "--epochs", "1", "--batch-size", "22",
    )  # fmt: skip
    assert results["steps"] == 2  # 44 train molecules
    assert results["tasks"] == list(TASK_NAMES)
    assert all(math.isfinite(results["test"][t]["mae"]) for t in TASK_NAMES)
    assert results["baseline"] is None  # reduced splits: no single-task baseline, no Delta_m


def test_one_task_run_is_a_single_task_baseline_run(small_source, tmp_path):
    results = _run(
        small_source, tmp_path / "run", "ew", "-o", "dataset.tasks=zpve",
        "-o", "dataset.test_size=8", "-o", "dataset.val_size=8", "-o", "backbone.dim=8", "-o", "backbone.edge_hidden=8",
        "--epochs", "1", "--batch-size", "22",
    )  # fmt: skip
    assert results["tasks"] == ["zpve"] and list(results["test"]) == ["zpve"]


def test_presets_hold_valid_options():
    for name, preset in QM9Dataset.presets.items():
        dataset_options = {k.split(".", 1)[1]: v for k, v in preset.items() if k.startswith("dataset.")}
        backbone_options = {k.split(".", 1)[1]: v for k, v in preset.items() if k.startswith("backbone.")}
        build_component_config(QM9Dataset.Config, dataset_options, where=f"preset {name}")
        build_component_config(MPNN.Config, backbone_options, where=f"preset {name}")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ew", "rep-mtl"])
def test_training_on_three_hundred_molecules_lowers_the_losses(tmp_path, strategy):
    source = write_source(tmp_path / "source", 300)
    run_dir = tmp_path / strategy
    results = _run(
        source, run_dir, strategy,
        "-o", "dataset.test_size=40", "-o", "dataset.val_size=40", "-o", "backbone.dim=16",
        "--epochs", "6", "--batch-size", "22", "--lr", "3e-3",
    )  # fmt: skip
    assert results["epochs_completed"] == 6 and results["steps"] == 60
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [sum(e["mean_losses"].values()) / len(TASK_NAMES) for e in epochs if e["event"] == "epoch"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(math.isfinite(results["test"][t]["mae"]) for t in TASK_NAMES)
