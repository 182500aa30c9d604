"""One step driver: ``mtlx run``'s engine and ``mtlx.MTL`` take the strategy's part of a step through the same
:class:`~mtlx.engine.driver.StepDriver` methods, so a user's loop gets the engine's step by construction.

The spy wraps the driver class's methods and records which module called each; a real ``mtlx run`` (the CLI,
in-process) and a user's loop with ``mtlx.MTL`` then train a few steps and two epochs each.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections import Counter

import pytest
import torch
from torch.utils.data import StackDataset

import mtlx
from mtlx.data import EpochLoader
from mtlx.engine import Engine, State
from mtlx.engine.driver import StepDriver
from mtlx.engine.step import forward, task_losses
from mtlx_testing import ToyModel, toy_batch, toy_tasks

pytest.importorskip("mtlx_baselines", reason="dwa, the per-epoch strategy both loops run, is mtlx-baselines'")

SPIED = ("backward", "finish", "record", "end_epoch")
TASKS = toy_tasks(2)


@pytest.fixture
def calls(monkeypatch) -> Counter[tuple[str, str]]:
    """``{(caller's module, method): count}`` of every call of the spied StepDriver methods."""
    seen: Counter[tuple[str, str]] = Counter()

    def spy(name):
        method = getattr(StepDriver, name)

        def wrapper(self, *args, **kwargs):
            seen[sys._getframe(1).f_globals["__name__"], name] += 1
            return method(self, *args, **kwargs)

        return wrapper

    for name in SPIED:
        monkeypatch.setattr(StepDriver, name, spy(name))
    return seen


def _user_loop(model: ToyModel, mtl: mtlx.MTL, batches, epochs: int) -> None:
    """A user's training loop with mtlx.MTL: SGD at lr 0.1, ``end_epoch`` after each pass over ``batches``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        for x, targets in batches:
            optimizer.zero_grad(set_to_none=True)
            preds, z = forward(model, x)
            mtl.backward(task_losses(preds, targets, TASKS), features=z)
            optimizer.step()
            mtl.step()
        mtl.end_epoch()


def test_mtlx_run_and_mtlx_mtl_take_their_steps_through_the_same_driver(cli, tmp_path, calls):
    result = cli("run", "-d", "toy", "-s", "dwa", "--epochs", "2", "--threads", "1", "-q", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    engine = {name: n for (module, name), n in calls.items() if module == "mtlx.engine.engine"}
    steps = engine["backward"]
    assert steps > 2 and engine == {"backward": steps, "finish": steps, "record": steps, "end_epoch": 2}

    model = ToyModel(TASKS)
    _user_loop(model, mtlx.MTL("dwa", tasks=list(TASKS), shared=model.encoder, heads=dict(model.heads)),
               [toy_batch(TASKS)] * 3, epochs=2)
    user = {name: n for (module, name), n in calls.items() if module == "mtlx.loop"}
    assert user == {"backward": 6, "finish": 6, "record": 6, "end_epoch": 2}
    assert {module for module, _ in calls} == {"mtlx.engine.engine", "mtlx.loop"}


def _loader() -> EpochLoader:
    x, targets = toy_batch(TASKS, batch_size=8, seed=3)
    return EpochLoader(StackDataset(x, StackDataset(**targets)), batch_size=2, seed=0)


def test_a_user_loop_with_mtlx_mtl_ends_two_dwa_epochs_with_the_engines_weights():
    """DWA reweights from each epoch's mean losses: equal weights after two epochs need equal steps, equal
    loss sums and equal on_epoch_end calls (the driver's, in both)."""
    torch.manual_seed(0)
    model = ToyModel(TASKS)
    twin = ToyModel(TASKS)
    twin.load_state_dict(model.state_dict())
    mtl = mtlx.MTL("dwa", tasks=list(TASKS), shared=twin.encoder, heads=dict(twin.heads))
    strategy = type(mtl.strategy)(mtl.strategy.config, tasks=list(TASKS))
    engine = Engine(model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    tasks=TASKS, train_loader=_loader(), state=State(max_epochs=3))
    engine.run()
    _user_loop(twin, mtl, _loader(), epochs=3)
    assert mtl.iteration == engine.state.iteration == 12 and mtl.epoch == engine.state.epoch == 3
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)


def test_an_engine_that_ran_is_freed_when_dropped_without_waiting_for_the_garbage_collector():
    """Its loaders' worker processes (which share the run directory's lock) end with it; an engine kept alive by a
    reference cycle through its driver left the directory locked for the next run in the same process."""
    model = ToyModel(TASKS)
    strategy = mtlx.MTL("dwa", tasks=list(TASKS), shared=model.encoder, heads=dict(model.heads)).strategy
    engine = Engine(model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    tasks=TASKS, train_loader=_loader(), state=State(max_epochs=1))
    engine.run()
    freed = weakref.ref(engine)
    gc.disable()
    try:
        del engine
        assert freed() is None
    finally:
        gc.enable()
