"""Handler state in checkpoints is keyed by the handler's full name (module.QualName): two plugins' handlers of
one class name keep their own state, and a checkpoint keyed by the bare class name (written before) still loads."""

from __future__ import annotations

import torch
from torch.utils.data import StackDataset

from mtlx.data import EpochLoader
from mtlx.engine import Engine, Handler, State
from mtlx_testing import ToyModel, toy_batch, toy_tasks
from mtlx_testing.plugin import ToyWeighted


def _counting_handler(module: str) -> type[Handler]:
    """A class ``Counter`` defined in ``module`` (as two plugins may both name one) that counts its steps."""

    def __init__(self):
        self.steps = 0

    def iteration_completed(self, engine):
        self.steps += 1 if module == "plugin_a.handlers" else 10

    return type("Counter", (Handler,), {
        "__module__": module, "__qualname__": "Counter", "__init__": __init__,
        "iteration_completed": iteration_completed, "state_dict": lambda self: {"steps": self.steps},
        "load_state_dict": lambda self, state: setattr(self, "steps", state["steps"]),
    })


def _engine(*handlers: Handler) -> Engine:
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    x, targets = toy_batch(tasks, batch_size=4)
    engine = Engine(
        model=model, strategy=ToyWeighted(ToyWeighted.Config(), tasks=list(tasks)),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01), tasks=tasks,
        train_loader=EpochLoader(StackDataset(x, StackDataset(**targets)), batch_size=2, seed=0),
        eval_loaders={}, state=State(max_epochs=1),
    )
    for handler in handlers:
        engine.attach(handler)
    return engine


def test_two_handlers_of_one_class_name_keep_their_own_state():
    a_cls, b_cls = _counting_handler("plugin_a.handlers"), _counting_handler("plugin_b.handlers")
    engine = _engine(a_cls(), b_cls())
    engine.run()
    saved = engine.state_dict()["handlers"]
    assert saved == {"plugin_a.handlers.Counter": {"steps": 2}, "plugin_b.handlers.Counter": {"steps": 20}}
    a, b = a_cls(), b_cls()
    _engine(a, b).load_state_dict(engine.state_dict())
    assert (a.steps, b.steps) == (2, 20)


def test_a_checkpoint_keyed_by_the_bare_class_name_still_loads():
    handler_cls = _counting_handler("plugin_a.handlers")
    engine = _engine(handler_cls())
    engine.run()
    state = engine.state_dict()
    state["handlers"] = {"Counter": state["handlers"].pop("plugin_a.handlers.Counter")}  # an older checkpoint
    restored = handler_cls()
    _engine(restored).load_state_dict(state)
    assert restored.steps == 2
