"""Engine events: documented firing order, handlers, the epoch checkpoint."""

from __future__ import annotations

import sys

import pytest
import torch
from torch.utils.data import StackDataset

from mtlx.checkpoint import load_checkpoint
from mtlx.data import EpochLoader
from mtlx.engine import Engine, Events, Handler, State
from mtlx.handlers import CheckpointHandler, EvaluationHandler
from mtlx_testing import ToyModel, toy_batch, toy_tasks
from mtlx_testing.plugin import ToyWeighted


def _engine(max_epochs=2, batches=2, max_steps=None):
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    x, targets = toy_batch(tasks, batch_size=2 * batches)
    data = StackDataset(x, StackDataset(**targets))
    loader = EpochLoader(data, batch_size=2, seed=0)
    strategy = ToyWeighted(ToyWeighted.Config(), tasks=list(tasks))
    return Engine(
        model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=0.01), tasks=tasks,
        train_loader=loader, eval_loaders={"val": loader}, state=State(max_epochs=max_epochs, max_steps=max_steps),
    )


class Recorder(Handler):
    """Records ``(event, epoch, step)`` at every event."""

    def __init__(self):
        self.events = []


for _ev in Events:
    setattr(Recorder, _ev.value,
            lambda self, engine, _name=_ev.value: self.events.append((_name, engine.state.epoch, engine.state.iteration)))


class EvaluateEachEpoch(Handler):
    def epoch_completed(self, engine):
        engine.evaluate("val")


def test_events_fire_in_documented_order():
    engine = _engine(max_epochs=2, batches=2)
    rec = engine.attach(Recorder())
    engine.attach(EvaluateEachEpoch())
    engine.run()
    expected = [("started", 0, 0)]
    for epoch in range(2):
        expected.append(("epoch_started", epoch, 2 * epoch))
        expected += [("iteration_completed", epoch, 2 * epoch + i) for i in range(1, 3)]
        expected += [("epoch_completed", epoch, 2 * epoch + 2), ("eval_completed", epoch, 2 * epoch + 2),
                     ("epoch_advanced", epoch + 1, 2 * epoch + 2)]
    expected.append(("completed", 2, 4))
    assert rec.events == expected


def test_exception_fires_exception_raised_and_propagates():
    engine = _engine()
    seen = []

    class Failing(Handler):
        def iteration_completed(self, engine):
            if engine.state.iteration == 3:
                raise KeyError("handler failed")

        def exception_raised(self, engine):
            seen.append(type(sys.exception()).__name__)

    engine.attach(Failing())
    with pytest.raises(KeyError, match="handler failed"):
        engine.run()
    assert seen == ["KeyError"] and engine.state.iteration == 3


def test_attach_takes_handlers_only():
    with pytest.raises(TypeError, match=r"attach\(\) takes an mtlx.engine.Handler, got function"):
        _engine().attach(lambda engine: None)


def test_epoch_checkpoint_records_the_advanced_epoch_without_moving_the_counter(tmp_path):
    """Only the loop moves ``state.epoch``; last.pt (and best.pt after an improving evaluation) resume at the next epoch."""
    engine = _engine(max_epochs=2, batches=2)
    written = []

    class WatchedState(State):
        def __setattr__(self, name, value):
            if name == "epoch":
                written.append(value)
            super().__setattr__(name, value)

    engine.state = WatchedState(max_epochs=2)
    engine.attach(EvaluationHandler("val"))
    engine.attach(CheckpointHandler(tmp_path, lambda: {}))
    engine.run()
    assert written == [0, 1, 2]  # the initial value, then one step per epoch
    last = load_checkpoint(tmp_path / "last.pt")["engine"]["state"]
    assert (last["epoch"], last["epoch_iteration"], last["iteration"]) == (2, 0, 4)
    best = load_checkpoint(tmp_path / "best.pt")["engine"]["state"]
    assert best["epoch_iteration"] == 0 and best["epoch"] == best["best"]["epoch"] + 1


def test_a_stop_requested_after_the_step_was_checkpointed_still_leaves_a_checkpoint_of_that_step(tmp_path):
    """A signal lands between steps: after the checkpoint handler saw the step, before the loop checks the
    flag. The run still stops with a ``last.pt`` of the step it stopped at (the message says one is there)."""

    class StopAfterTheCheckpointSawTheStep(Handler):  # what SIGTERM's handler does, at the worst moment
        def iteration_completed(self, engine):
            if engine.state.iteration == 3:
                engine.state.should_stop = True

    engine = _engine(max_epochs=5, batches=4)
    engine.attach(CheckpointHandler(tmp_path, lambda: {}))
    engine.attach(StopAfterTheCheckpointSawTheStep())
    state = engine.run()
    assert state.iteration == 3
    last = load_checkpoint(tmp_path / "last.pt")["engine"]["state"]
    assert (last["iteration"], last["epoch"], last["epoch_iteration"]) == (3, 0, 3)


def test_max_steps_stops_mid_epoch():
    engine = _engine(max_epochs=5, batches=3, max_steps=4)
    state = engine.run()
    assert (state.iteration, state.epoch, state.epoch_iteration) == (4, 1, 1)


def test_max_grad_norm_clips_the_update():
    """With SGD lr=1 and no momentum the parameter change is the clipped gradient: norm <= 0.01."""
    engine = _engine(max_epochs=1, batches=1)
    engine.optimizer = torch.optim.SGD(engine.model.parameters(), lr=1.0)
    engine.max_grad_norm = 0.01
    before = torch.cat([p.detach().clone().reshape(-1) for p in engine.model.parameters()])
    engine.run()
    after = torch.cat([p.detach().reshape(-1) for p in engine.model.parameters()])
    assert (after - before).norm() == pytest.approx(0.01, rel=1e-4)


def test_evaluate_under_another_name_keeps_the_split_row():
    """Re-evaluating a split with other weights (test at the best checkpoint) is stored and logged apart."""
    engine = _engine()
    logged = []

    class Log(Handler):
        def eval_completed(self, engine):
            logged.append(engine.state.last_eval)

    engine.attach(Log())
    first = engine.evaluate("val")
    with torch.no_grad():
        for p in engine.model.parameters():
            p.add_(1.0)
    second = engine.evaluate("val", name="val@best")
    assert logged == ["val", "val@best"]
    assert engine.state.metrics["val"] == first != second == engine.state.metrics["val@best"]
    assert set(engine.state.summary) == {"val", "val@best"}
