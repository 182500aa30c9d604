"""`mtlx run` end to end on the NYUv2 fixture (tiny CNN backbone), the plugin's registration and its preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtlx.build import build_dataset
from mtlx.checkpoint import load_checkpoint
from mtlx.config import resolve_run_config
from mtlx.hooks import PluginManager
from mtlx_testing import invoke_cli

SMALL_MODEL = (
    "--backbone", "digits-cnn", "--head", "conv", "--device", "cpu", "-q",
    "-o", "backbone.channels=8", "-o", "head.hidden_channels=8",
)  # fmt: skip


def _run(mtlx_cli, root: Path, out: Path, *args: str):
    result = mtlx_cli("run", "--dataset", "nyuv2", "--data-root", root, "--out", out, *SMALL_MODEL, *args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


# rep-mtl takes per-task gradients w.r.t. Z: > 10 s on a busy 2-core machine, so it runs with `-m slow`
@pytest.mark.parametrize("strategy", ["ew", pytest.param("rep-mtl", marks=pytest.mark.slow)])
def test_run_trains_and_reports_every_metric_and_delta_m(mtlx_cli, nyuv2_root: Path, tmp_path: Path, strategy: str):
    results = _run(mtlx_cli, nyuv2_root, tmp_path / "run", "--strategy", strategy, "--epochs", "1", "--batch-size", "2")
    assert results["steps"] == 2 and results["test_split"] == "test"
    assert set(results["test"]) == {"segmentation", "depth", "normal"}
    assert set(results["test"]["normal"]) == {"mean", "median", "within_11.25", "within_22.5", "within_30"}
    assert results["baseline"]["segmentation"]["miou"] == pytest.approx(0.535)
    assert {"delta_m_task", "delta_m_metric"} <= set(results["test_summary"])
    per_class = results["test_details"]["segmentation"]["per_class_iou"]  # reported beside the metrics, not in them
    present = [v for v in per_class if v is not None]  # NaN (absent class) is null in JSON
    assert len(per_class) == 13 and sum(present) / len(present) == pytest.approx(results["test"]["segmentation"]["miou"])
    assert set(results["test_details"]) == set(results["val_details"]) == {"segmentation"}


def test_run_with_augmentation_workers_and_batch_metrics(mtlx_cli, nyuv2_root: Path, tmp_path: Path):
    options = "-o dataset.augment=true -o dataset.metric_aggregation=batch -o dataset.baseline=segnet"
    args = f"--strategy ew --max-steps 2 --batch-size 2 --num-workers 2 {options} -o dataset.resolution=[32,32]"
    results = _run(mtlx_cli, nyuv2_root, tmp_path / "run", *args.split())
    assert results["baseline"]["segmentation"]["miou"] == pytest.approx(0.3830)
    assert 0.0 <= results["test"]["normal"]["within_30"] <= 1.0


@pytest.mark.slow  # three runs: > 10 s
@pytest.mark.parametrize("workers", ["0", "2"])
def test_resumed_augmented_run_matches_the_uninterrupted_one(mtlx_cli, nyuv2_root: Path, tmp_path: Path, workers: str):
    """Stop mid-epoch 2 with augmentation on, resume, and end with bit-identical weights."""
    args = f"--strategy ew --epochs 2 --batch-size 1 --num-workers {workers} -o dataset.augment=true".split()
    _run(mtlx_cli, nyuv2_root, tmp_path / "full", *args)
    _run(mtlx_cli, nyuv2_root, tmp_path / "part", *args, "--max-steps", "6")
    result = mtlx_cli("run", "--resume", tmp_path / "part", "-q", "-o", "train.max_steps=1000")
    assert result.exit_code == 0, result.output
    full = load_checkpoint(tmp_path / "full" / "last.pt")["engine"]["model"]
    part = load_checkpoint(tmp_path / "part" / "last.pt")["engine"]["model"]
    assert all(torch.equal(full[k], part[k]) for k in full)


def test_missing_data_exits_with_the_data_error(mtlx_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MTLX_DATA", str(tmp_path))
    result = mtlx_cli("run", "--dataset", "nyuv2", "--out", tmp_path / "run", *SMALL_MODEL)
    assert result.exit_code == 5
    assert "nyuv2" in result.output and "lorenmt/mtan" in result.output and "Traceback" not in result.output


def test_registered_through_the_entry_point() -> None:
    entry = PluginManager().registries.datasets.entry("nyuv2")
    assert entry.owner.startswith("mtlx-nyuv2==")


def test_paper_preset_resolves_to_the_papers_settings(nyuv2_root: Path) -> None:
    config = resolve_run_config([{"dataset.name": "nyuv2", "train.data_root": str(nyuv2_root)}], ["paper"])
    train = config.train
    assert (train.batch_size, train.epochs, train.optimizer, train.lr, train.weight_decay) == (
        8,
        200,
        "adam",
        1e-4,
        1e-5,
    )
    assert (train.scheduler, train.step_size, train.gamma, train.loss_transform) == ("step", 100, 0.5, "log")
    assert (config.arch.name, config.backbone.name, config.head.name) == ("hps", "resnet50-dilated", "deeplab-aspp")
    registries = PluginManager().registries
    assert config.backbone.name in registries.backbones and config.head.name in registries.heads
    dataset = build_dataset(config)  # the preset's dataset options are valid for the Config
    assert dataset.config.augment and dataset.config.baseline == "deeplabv3plus"
    assert dataset.input_shape == (3, 288, 384)  # the fixture (32x64) is resampled to the paper's resolution
    image, targets = dataset.split("test")[0]
    assert image.shape == (3, 288, 384) and targets["depth"].shape == (1, 288, 384)


def test_profile_synthetic_reads_no_data(monkeypatch, tmp_path):
    """The README's profile example: no NYUv2 on disk, --synthetic with the paper's resolution."""
    pytest.importorskip("mtlx_archs", reason="the profile needs a backbone")
    monkeypatch.delenv("MTLX_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    args = ["profile", "--dataset", "nyuv2", "--synthetic", "--arch", "hps", "--backbone", "resnet18",
            "--head", "linear", "--strategy", "ew", "--batch-size", "1", "--steps", "0", "--no-flops"]
    result = invoke_cli(*args, "-o", "dataset.resolution=[64,64]")
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output
    without = invoke_cli(*args)  # the release's native size is in its files: said, not guessed
    assert without.exit_code != 0 and "-o dataset.resolution=[H,W]" in without.output
