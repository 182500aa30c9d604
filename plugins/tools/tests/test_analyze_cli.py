"""`mtlx analyze powerlaw` on a run directory: per-layer fits, module groups, JSON and ESD plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtlx.checkpoint import load_checkpoint


def test_analyze_powerlaw_writes_json_and_plots(cli, toy_runs, tmp_path):
    from PIL import Image

    run = toy_runs["a1"]
    out = tmp_path / "pl"
    result = cli("analyze", "powerlaw", str(run), "--out", str(out), "--conv", "reshape")
    assert result.exit_code == 0, result.output
    assert "grouping by model" in result.stdout and "backbone" in result.stdout
    assert "heads.seg0.1.weight" in result.stdout and "< min_evals=10" in result.stdout
    data = json.loads((out / "powerlaw.json").read_text())
    assert data["grouping"] == "model" and data["conv"] == "reshape"
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert set(layers) == {"encoder.0.weight", "encoder.2.weight"}
    assert {s["name"]: s["group"] for s in data["skipped"]} == {
        "heads.seg0.1.weight": "head:seg0",
        "heads.reg1.1.weight": "head:reg1",
    }
    weights = load_checkpoint(run / "last.pt")["engine"]["model"]
    for name, layer in layers.items():
        w = weights[name].double().reshape(weights[name].shape[0], -1).numpy()  # (32, in*kh*kw)
        evals = np.linalg.eigvalsh(w.T @ w)[-min(w.shape):]
        assert layer["n_evals"] == min(w.shape) and layer["group"] == "backbone"
        tail = evals[evals >= layer["xmin"] * (1 - 1e-9)]
        assert layer["n_tail"] == tail.size
        assert layer["alpha"] == pytest.approx(1 + tail.size / np.log(tail / tail.min()).sum(), rel=1e-6)
    backbone = data["groups"]["backbone"]
    assert backbone["layers"] == 2
    assert backbone["alpha_mean"] == pytest.approx(np.mean([layer["alpha"] for layer in layers.values()]))
    assert data["groups"]["head:seg0"] == {"layers": 0, "skipped": 1, "alpha_mean": None, "alpha_std": None}
    with Image.open(out / "esd_backbone.png") as image:
        assert image.width > 300 and len(image.convert("L").getcolors(maxcolors=1 << 16)) > 20


def test_analyze_powerlaw_groups_by_name_without_the_plugin(cli, toy_runs, tmp_path):
    """Without the toy plugin the model cannot be rebuilt: groups come from parameter names."""
    result = cli("analyze", "powerlaw", str(toy_runs["a2"]), "--out", str(tmp_path),  # default: WeightWatcher slices
                 "--checkpoint", "best", "--no-plots", toy=False)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "powerlaw.json").read_text())
    assert data["grouping"].startswith("names (model not rebuilt: no dataset 'toy'")
    assert data["conv"] == "slices" and data["source"].endswith("best.pt")
    assert {layer["name"]: layer["n_evals"] for layer in data["layers"]} == {
        "encoder.0.weight": 27, "encoder.2.weight": 288,  # 9 slices of (32, 3) and of (32, 32)
    }
    assert {s["group"] for s in data["skipped"]} == {"head:seg0", "head:reg1"}
    assert not list(tmp_path.glob("*.png"))


def test_analyze_powerlaw_errors_name_the_path(cli, toy_runs, tmp_path):
    result = cli("analyze", "powerlaw", str(tmp_path / "nope"))
    assert result.exit_code == 2 and f"run directory {tmp_path / 'nope'} does not exist" in result.output
    (tmp_path / "run").mkdir()
    result = cli("analyze", "powerlaw", str(tmp_path / "run"), "--checkpoint", "best")
    assert result.exit_code == 4 and f"checkpoint {tmp_path / 'run' / 'best.pt'} does not exist" in result.output
