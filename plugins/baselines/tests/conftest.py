"""Shared fixtures of the baselines tests: one intra-op thread per test (tiny ops on a shared CPU), a toy step."""

from __future__ import annotations

import pytest
import torch

from mtlx import StepContext
from mtlx_testing import ToyModel, make_step, toy_batch, toy_tasks
from mtlx_testing.fixtures import single_thread  # noqa: F401  (autouse pytest fixture)


@pytest.fixture
def step() -> StepContext:
    """A real step context on the 3-task toy problem (loss weightings read its epoch, iteration and learning rate;
    their tests give the losses)."""
    tasks = toy_tasks(3)
    x, y = toy_batch(tasks)
    return make_step(ToyModel(tasks), x, y, tasks)


@pytest.fixture(params=["loop", "two-stage"])
def float64_step(request: pytest.FixtureRequest) -> StepContext:
    """The 3-task toy step at float64 by each per-task-gradient method: what a gradient method is checked on."""
    torch.manual_seed(0)
    tasks = toy_tasks(3)
    x, targets = toy_batch(tasks, seed=0)
    return make_step(ToyModel(tasks).double(), x.double(), targets, tasks, grad_method=request.param)
