"""`mtlx run` end to end on the Cityscapes and GTA5 fixtures (tiny CNN backbone), and the plugin's registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlx.hooks import PluginManager

SMALL_MODEL = (
    "--backbone", "digits-cnn", "--head", "conv", "--device", "cpu", "-q",
    "-o", "backbone.channels=8", "-o", "head.hidden_channels=8",
)  # fmt: skip


def _run(mtlx_cli, out: Path, *args) -> dict:
    result = mtlx_cli("run", "--out", out, *SMALL_MODEL, *args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


# rep-mtl takes per-task gradients w.r.t. Z: > 10 s on a busy 2-core machine, so it runs with `-m slow`
@pytest.mark.parametrize("strategy", ["ew", pytest.param("rep-mtl", marks=pytest.mark.slow)])
def test_cityscapes_run(mtlx_cli, cityscapes_root: Path, tmp_path: Path, strategy: str) -> None:
    results = _run(
        mtlx_cli, tmp_path / "run", "--dataset", "cityscapes", "--data-root", cityscapes_root,
        "--strategy", strategy, "--epochs", "1", "--batch-size", "2",
    )  # fmt: skip
    assert results["steps"] == 2 and set(results["test"]) == {"segmentation", "depth"}
    assert results["baseline"]["depth"]["rel_err"] == 43.53
    assert {"delta_m_task", "delta_m_metric"} <= set(results["test_summary"])


def test_gta5_run_trains_on_frames_and_tests_on_cityscapes(
    mtlx_cli, gta5_root: Path, cityscapes_root: Path, tmp_path: Path
) -> None:
    results = _run(
        mtlx_cli, tmp_path / "run", "--dataset", "gta5", "--data-root", gta5_root, "--strategy", "ew",
        "--epochs", "1", "--batch-size", "2", "-o", f"dataset.cityscapes_root={json.dumps(str(cityscapes_root))}",
        "-o", "dataset.augment=true",
    )  # fmt: skip
    assert results["steps"] == 2 and results["test_split"] == "test"
    assert set(results["test"]["segmentation"]) == {"miou", "pixacc"} and results["baseline"] is None


def test_both_datasets_registered_through_the_entry_point() -> None:
    registries = PluginManager().registries
    for name in ("cityscapes", "gta5"):
        assert registries.datasets.entry(name).owner.startswith("mtlx-cityscapes==")
