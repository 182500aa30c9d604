"""``mtlx profile`` end to end on digits (small splits): JSON fields against independent counts."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mtlx_tools import count_flops
from mtlx.build import build_model, resolve_run_config
from mtlx.cli import main
from mtlx_digits.tasks import TASKS  # the dataset profiled here

_DIGITS = [
    "--dataset",
    "digits",
    "-o",
    "dataset.train_size=4",
    "-o",
    "dataset.val_size=1",
    "-o",
    "dataset.test_size=1",
    "--batch-size",
    "4",
    "--steps",
    "2",
    "--warmup",
    "0",
    "--device",
    "cpu",
]


def _invoke(*args):
    return CliRunner().invoke(main, ["profile", *_DIGITS, *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def saliency_mgda():
    result = CliRunner().invoke(
        main,
        [
            "profile",
            *_DIGITS,
            "--arch",
            "saliency-decoder",
            "--strategy",
            "mgda",
            "-o",
            "strategy.grad_mode=rep",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_profile_json_matches_independent_counts(saliency_mgda):
    r = saliency_mgda
    config = resolve_run_config([{"dataset.name": "digits", "dataset.train_size": 4, "arch.name": "saliency-decoder"}])
    tasks = {t: TASKS[t] for t in r["params_per_task"]}
    model = build_model(config, tasks, (1, 32, 32))
    assert r["params_total"] == sum(p.numel() for p in model.parameters())
    assert r["params_shared"] == sum(p.numel() for p in model.backbone.parameters())
    assert r["params_per_task"] == {
        t: sum(p.numel() for p in (*model.saliency[t].parameters(), *model.heads[t].parameters())) for t in tasks
    }
    assert r["flops"]["total"] == count_flops(model, torch.zeros(1, 1, 32, 32)).total
    assert r["flops"]["uncounted"] == {}
    assert r["batch_size"] == 4 and r["input_shape"] == [1, 32, 32]


def test_profile_reports_strategy_cost_over_ew(saliency_mgda):
    r = saliency_mgda
    phases = ("forward", "backward", "optimizer", "after_step")
    for times in (r["times"], r["ew_times"]):
        assert all(times[p] >= 0 for p in phases)
        assert times["total"] == pytest.approx(sum(times[p] for p in phases))
    assert r["strategy_extra_ms"] == pytest.approx(r["times"]["total"] - r["ew_times"]["total"])
    assert r["saved_activations_bytes"] > 4 * 32 * 32 * 4  # at least the input batch's worth
    assert r["peak_memory_bytes"] > r["saved_activations_bytes"]


def test_profile_table_and_synthetic_mode():
    result = _invoke("--arch", "cross-stitch", "--synthetic")
    assert result.exit_code == 0, result.output
    assert "every operator that ran was counted" in result.output
    assert "time per training step, batch 4, cpu" in result.output
    assert "(own forward)" in result.output  # cross-stitch mixes features in its own forward


def test_profile_refuses_representation_strategy_without_z():
    result = CliRunner().invoke(
        main, ["profile", *_DIGITS, "--arch", "mtan", "--strategy", "mgda", "-o", "strategy.grad_mode=rep"]
    )
    assert result.exit_code == 2
    assert "needs a single shared representation, but architecture 'mtan' has none" in result.output
