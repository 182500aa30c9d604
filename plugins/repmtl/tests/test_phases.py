"""Rep-MTL's profiler labels come from the core's mtlx.phases.phase: each block once per step, the core's
backward label inside Rep-MTL's."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from mtlx import phases
from mtlx_repmtl import RepMTLConfig
from mtlx_testing import ToyModel, make_step, toy_batch, toy_tasks

from .conftest import rep_mtl

BLOCKS = ("rep-mtl/saliency", "rep-mtl/regularisers", "rep-mtl/estimate", "rep-mtl/backward")


def test_each_block_is_labelled_once_per_step_and_the_cores_backward_is_inside_its_own():
    torch.manual_seed(0)
    tasks = toy_tasks(3)
    model = ToyModel(tasks)
    x, targets = toy_batch(tasks, batch_size=4)
    strategy = rep_mtl(RepMTLConfig(), tasks=list(tasks))  # balanced: the first step estimates the weights
    with profile(activities=[ProfilerActivity.CPU]) as prof, phases.phase("rep-mtl/backward"):
        strategy.backward(make_step(model, x, targets, tasks))  # inside an open region of the same name
    spans = {name: [e.time_range for e in prof.events() if e.name == name] for name in (*BLOCKS, phases.BACKWARD)}
    assert [len(spans[name]) for name in BLOCKS] == [1, 1, 1, 1]  # the open rep-mtl/backward is not doubled
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        strategy.backward(make_step(model, x, targets, tasks, iteration=1))
    spans = {name: [e.time_range for e in prof.events() if e.name == name] for name in (*BLOCKS, phases.BACKWARD)}
    assert [len(spans[name]) for name in BLOCKS] == [1, 1, 0, 1]  # the weights are estimated on the first step only
    (outer,) = spans["rep-mtl/backward"]
    assert spans[phases.BACKWARD] and all(outer.start <= s.start and s.end <= outer.end for s in spans[phases.BACKWARD])
