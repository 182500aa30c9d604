"""The template plugin is found through its entry point and weighs the losses as configured."""

from __future__ import annotations

import pytest
import torch

import mtlx
from mtlx_testing import ToyModel, check_strategy, invoke_cli, make_step, toy_batch, toy_tasks


def test_registered_through_the_entry_point():
    entry = mtlx.PluginManager().registries.strategies.entry("fixed-weights")
    assert entry.owner.startswith("mtlx-fixed-weights==0.1.0")


def test_gradients_equal_the_weighted_sum():
    from mtlx_fixed_weights.plugin import FixedWeights

    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    x, y = toy_batch(tasks)
    strategy = FixedWeights(FixedWeights.Config(weights={"seg0": 2.0}, default=0.5), tasks=list(tasks))
    result = strategy.backward(make_step(model, x, y, tasks))
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    step = make_step(model, x, y, tasks)
    (2.0 * step.losses["seg0"] + 0.5 * step.losses["reg1"]).backward()
    assert all(torch.allclose(g, p.grad) for g, p in zip(got, model.parameters()))
    assert result.weights == {"seg0": 2.0, "reg1": 0.5}


def test_unknown_task_weight_is_a_config_error():
    from mtlx_fixed_weights.plugin import FixedWeights

    with pytest.raises(mtlx.ConfigError, match="unknown tasks \\['sge'\\]"):
        FixedWeights(FixedWeights.Config(weights={"sge": 1.0}), tasks=["seg", "depth"])


def test_runs_through_the_cli(tmp_path):
    result = invoke_cli(
        "--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "fixed-weights", "-q", "--epochs", "1",
        "-o", "strategy.weights={seg0 = 3.0}", "--out", tmp_path / "run",
    )
    assert result.exit_code == 0, result.output


def test_conforms_to_the_strategy_contract():
    check_strategy("fixed-weights", {"weights": {"seg0": 2.0}, "default": 0.5})
