"""The finiteness guard: one flag per tensor without overflow, and one host read per training step."""

from __future__ import annotations

import collections
import traceback
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from mtlx import runner
from mtlx.build import build
from mtlx.config import resolve
from mtlx.engine.finite import finite_flags
from mtlx.hooks import PluginManager

ENGINE = Path(runner.__file__).parent / "engine"
HOST_READS = {"item", "tolist", "__float__", "__bool__", "__int__", "__index__", "numpy"}


def test_finite_flags_are_per_tensor_and_do_not_overflow():
    tensors = [torch.tensor([1.0, float("nan")]), torch.full((4,), 1e30), torch.tensor([float("-inf")]),
               torch.tensor([3.0], dtype=torch.bfloat16), torch.tensor([1e300], dtype=torch.float64)]
    assert finite_flags(tensors).tolist() == [False, True, False, True, True]


class _HostReads(TorchFunctionMode):
    """Counts the tensor methods that copy a value to the host, by the engine's own lines that call them."""

    def __init__(self):
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            caller = traceback.extract_stack(limit=2)[0]  # the line that asked for the value
            if Path(caller.filename).parent == ENGINE:
                self.calls[f"{Path(caller.filename).name}:{caller.lineno}"] += 1
        return func(*args, **(kwargs or {}))


def test_a_training_step_reads_the_device_once():
    """Losses, their flags, the gradients' flag and a flag per parameter and buffer: one transfer (five before,
    with two tasks: a float() per loss to check it, one for the gradients, a float() per loss to log it)."""
    registries = PluginManager(modules=["mtlx_testing.plugin"]).registries
    config = resolve([{"dataset.name": "toy", "strategy.name": "toy-weighted", "arch.name": "toy",
                       "backbone.name": "toy", "head.name": "toy", "train.batch_size": 4}], registries)
    components = build(config, registries)
    engine = runner.make_engine(components, runner._loader(components, "train", train=True))
    first, second = list(engine.train_loader)[:2]
    engine._train_step(first)
    with _HostReads() as reads:
        engine._train_step(second)
    assert sum(reads.calls.values()) == 1, reads.calls
