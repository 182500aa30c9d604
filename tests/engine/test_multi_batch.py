"""Strategies that draw k independent batches per step (``batches_per_step``), with no name checked anywhere.

The engine draws k consecutive batches of its loader for one step (an epoch has ``len(loader) // k``
steps, the rest is drawn and left unused), hands batches 1..k-1 over as ``StepContext.extra_losses``;
``mtlx.MTL.backward`` takes them as ``extra_losses=`` and gives the engine's gradients exactly.
"""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import attrs
import pytest
import torch
from torch.utils.data import StackDataset

from mtlx import MTL, ConfigError
from mtlx.data import EpochLoader
from mtlx.engine import Engine, State
from mtlx.engine.step import forward, task_losses
from mtlx.interfaces import LossWeighting, StepContext
from mtlx_testing import ToyModel, toy_batch, toy_tasks

TASKS = toy_tasks(2)
_BASELINES = pytest.mark.skipif(importlib.util.find_spec("mtlx_baselines") is None,
                                reason="modo and sdmgrad are mtlx-baselines' (the core-only matrix target lacks them)")


class MeanOfBatches(LossWeighting):
    """Sums each batch's losses and averages over the step's batches; records every batch's loss values."""

    batches_per_step: ClassVar[int] = 3

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    def __init__(self, config, *, tasks):
        super().__init__(config, tasks=tasks)
        self.seen: list[list[list[float]]] = []

    def combine(self, losses, step: StepContext):
        batches = [step.loss_vector(j) for j in range(step.num_batches)]
        self.seen.append([b.detach().tolist() for b in batches])
        return torch.stack(batches).mean(0).sum(), torch.ones(len(losses))


def _loader(batches: int, seed: int = 0) -> EpochLoader:
    x, targets = toy_batch(TASKS, batch_size=2 * batches, seed=seed)
    return EpochLoader(StackDataset(x, StackDataset(**targets)), batch_size=2, seed=0)


def _engine(model, strategy, loader, lr=0.0, **state) -> Engine:
    return Engine(model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=lr), tasks=TASKS,
                  train_loader=loader, state=State(**{"max_epochs": 1, **state}))


def _losses(model, batch) -> list[float]:
    x, targets = batch
    with torch.no_grad():
        return list(task_losses(forward(model, x)[0], targets, TASKS).values())


def test_the_engine_draws_three_consecutive_batches_per_step_and_epochs_have_len_over_k_steps():
    torch.manual_seed(0)
    model, loader = ToyModel(TASKS), _loader(7)
    strategy = MeanOfBatches(MeanOfBatches.Config(), tasks=list(TASKS))
    engine = _engine(model, strategy, loader, max_epochs=2)  # lr 0: the losses of a batch never change
    assert engine.steps_per_epoch == 2
    state = engine.run()
    assert state.iteration == 4 and state.epoch == 2 and loader.epoch == 2
    reference = _loader(7)
    expected = []
    for _ in range(2):
        batches = [[float(v) for v in _losses(model, b)] for b in reference]
        expected += [batches[0:3], batches[3:6]]  # the 7th batch of each epoch is left unused
    assert len(strategy.seen) == 4
    for step, (got, want) in enumerate(zip(strategy.seen, expected, strict=True)):
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want), msg=f"step {step}")


def test_a_loader_shorter_than_k_batches_is_refused_in_one_line():
    strategy = MeanOfBatches(MeanOfBatches.Config(), tasks=list(TASKS))
    with pytest.raises(ConfigError, match=r"draws 3 training batches per step, but the training loader has 2 per "):
        _engine(ToyModel(TASKS), strategy, _loader(2))


@_BASELINES
@pytest.mark.parametrize("name", ["modo", "sdmgrad"])
def test_mtl_backward_with_extra_losses_gives_the_engines_gradients(name):
    torch.manual_seed(0)
    model = ToyModel(TASKS)
    twin = ToyModel(TASKS)
    twin.load_state_dict(model.state_dict())
    mtl = MTL(name, tasks=list(TASKS), shared=twin.encoder, heads=twin.heads)
    engine = _engine(model, mtl.strategy.__class__(mtl.strategy.config, tasks=list(TASKS)), _loader(3), max_steps=1)
    engine.run()
    batches = list(_loader(3))
    outs = [forward(twin, x) for x, _ in batches]
    losses = [task_losses(preds, targets, TASKS) for (preds, _), (_, targets) in zip(outs, batches, strict=True)]
    mtl.backward(losses[0], features=outs[0][1], extra_losses=losses[1:], extra_features=[z for _, z in outs[1:]])
    for (n, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=n)


@_BASELINES
@pytest.mark.parametrize("extra", [None, 1])
def test_mtl_refuses_a_multi_batch_strategy_without_its_extra_losses(extra):
    model = ToyModel(TASKS)
    mtl = MTL("modo", tasks=list(TASKS), shared=model.encoder, heads=model.heads)
    x, targets = toy_batch(TASKS)
    preds, z = forward(model, x)
    losses = task_losses(preds, targets, TASKS)
    kwargs = {} if extra is None else {"extra_losses": [losses] * extra}
    with pytest.raises(ConfigError, match=r"^mtlx.MTL.backward: strategy 'modo' takes 3 independent batches per step: "
                                          r"pass extra_losses=\[...\]") as error:
        mtl.backward(losses, features=z, **kwargs)
    assert "\n" not in str(error.value)
    assert all(p.grad is None for p in model.parameters())
