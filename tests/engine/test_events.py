"""Engine events: documented firing order, filters, attach-time checks."""

from __future__ import annotations

import pytest
import torch

from mtlx.engine import Engine, Events, Handler
from mtlx.testing import ToyModel, toy_batch, toy_tasks
from mtlx.testing.plugin import ToyWeighted, _Samples


def _engine(max_epochs=2, batches=2, max_steps=None):
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    x, targets = toy_batch(tasks, batch_size=2 * batches)
    data = _Samples(x, targets)
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    strategy = ToyWeighted(ToyWeighted.Config(), tasks=list(tasks))
    return Engine(
        model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=0.01), tasks=tasks,
        train_loader=loader, eval_loaders={"val": loader}, max_epochs=max_epochs, max_steps=max_steps,
    )


class Recorder(Handler):
    def __init__(self):
        self.events = []

    def __getattribute__(self, name):
        if name in {e.value for e in Events}:
            return lambda engine: self.events.append((name, engine.state.epoch, engine.state.iteration))
        return object.__getattribute__(self, name)


for _ev in Events:  # make every event an override so attach() connects it
    setattr(Recorder, _ev.value, lambda self, engine: None)


def test_events_fire_in_documented_order():
    engine = _engine(max_epochs=2, batches=2)
    rec = engine.attach(Recorder())
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.evaluate("val"))
    engine.run()
    step = ["iteration_started", "after_forward", "after_backward", "after_optimizer_step", "iteration_completed"]
    expected = [("started", 0, 0)]
    for epoch in range(2):
        expected.append(("epoch_started", epoch, 2 * epoch))
        for i in range(1, 3):
            expected += [(name, epoch, 2 * epoch + i) for name in step]
        expected += [("epoch_completed", epoch, 2 * epoch + 2), ("eval_completed", epoch, 2 * epoch + 2)]
    expected.append(("completed", 2, 4))
    assert rec.events == expected


def test_exception_fires_exception_raised_and_propagates():
    engine = _engine()
    seen = []
    engine.add_event_handler(Events.EXCEPTION_RAISED, lambda e: seen.append(type(e.last_exception).__name__))

    def fail(e):
        raise KeyError("handler failed")

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), fail)
    with pytest.raises(KeyError, match="handler failed"):
        engine.run()
    assert seen == ["KeyError"] and engine.state.iteration == 3


def test_filters_every_once_custom_and_removal():
    engine = _engine(max_epochs=3, batches=2)
    calls = {"every": [], "once": [], "custom": [], "removed": []}
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), lambda e: calls["every"].append(e.state.iteration))
    engine.add_event_handler(Events.EPOCH_COMPLETED(once=2), lambda e: calls["once"].append(e.state.epoch))
    engine.add_event_handler(
        Events.ITERATION_STARTED(filter=lambda e, n: n in (1, 5)), lambda e: calls["custom"].append(e.state.iteration)
    )
    handle = engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: calls["removed"].append(1))
    handle.remove()
    engine.run()
    assert calls == {"every": [2, 4, 6], "once": [1], "custom": [1, 5], "removed": []}


def test_max_steps_stops_mid_epoch():
    engine = _engine(max_epochs=5, batches=3, max_steps=4)
    state = engine.run()
    assert (state.iteration, state.epoch, state.epoch_iteration) == (4, 1, 1)


@pytest.mark.parametrize("kwargs", [{"every": 0}, {"once": -1}, {}, {"every": 2, "once": 1}])
def test_bad_filter_arguments_fail_at_creation(kwargs):
    with pytest.raises(ValueError, match="ITERATION_COMPLETED"):
        Events.ITERATION_COMPLETED(**kwargs)


def test_handler_signature_checked_when_attached():
    engine = _engine()
    with pytest.raises(ValueError, match=r"cannot be called as fn\(engine\)"):
        engine.add_event_handler(Events.STARTED, lambda: None)
    with pytest.raises(ValueError, match="unknown event"):
        engine.add_event_handler("started", lambda e: None)


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
    engine.add_event_handler(Events.EVAL_COMPLETED, lambda e: logged.append(e.last_eval_split))
    first = engine.evaluate("val")
    with torch.no_grad():
        for p in engine.model.parameters():
            p.add_(1.0)
    second = engine.evaluate("val", name="val@best")
    assert logged == ["val", "val@best"]
    assert engine.state.metrics["val"] == first != second == engine.state.metrics["val@best"]
    assert set(engine.state.summary) == {"val", "val@best"}
