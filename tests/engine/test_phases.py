"""Profiler labels of a training step (mtlx.phases): present, once per step, nested as documented, never doubled."""

from __future__ import annotations

import itertools

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import StackDataset

from mtlx import phases
from mtlx.engine import Engine, State
from mtlx_testing import ToyModel, make_step, toy_batch, toy_tasks
from mtlx_testing.plugin import ToyWeighted

LABELS = (phases.FORWARD, phases.STRATEGY, phases.OPTIMIZER, phases.PER_TASK_GRADS, phases.BACKWARD)


def _regions(prof: profile) -> dict[str, list[tuple[int, int]]]:
    """``{label: [(start, end), ...]}`` in time order, for the mtlx labels."""
    out: dict[str, list[tuple[int, int]]] = {label: [] for label in LABELS}
    for event in prof.events():
        if event.name in out:
            out[event.name].append((event.time_range.start, event.time_range.end))
    return {label: sorted(spans) for label, spans in out.items()}


def _inside(inner: tuple[int, int], outer: list[tuple[int, int]]) -> bool:
    return any(start <= inner[0] and inner[1] <= end for start, end in outer)


def test_engine_step_labels_its_three_phases_once_per_step_in_order():
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    x, targets = toy_batch(tasks, batch_size=4)
    loader = torch.utils.data.DataLoader(StackDataset(x, StackDataset(**targets)), batch_size=2)
    engine = Engine(
        model=model, strategy=ToyWeighted(ToyWeighted.Config(), tasks=list(tasks)),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01), tasks=tasks,
        train_loader=loader, eval_loaders={}, state=State(max_epochs=1),
    )
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.run()
    regions = _regions(prof)
    top = [regions[phases.FORWARD], regions[phases.STRATEGY], regions[phases.OPTIMIZER]]
    assert [len(spans) for spans in top] == [2, 2, 2]
    for step in range(2):  # forward, then the strategy, then the optimiser, without overlap
        spans = [phase_spans[step] for phase_spans in top]
        assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]
    # the toy weighting backpropagates through StepContext.backward: labelled, inside the strategy
    assert len(regions[phases.BACKWARD]) == 2
    assert all(_inside(span, regions[phases.STRATEGY]) for span in regions[phases.BACKWARD])


def test_step_context_labels_are_disjoint_and_never_nested_in_themselves():
    tasks = toy_tasks(3)
    model = ToyModel(tasks)
    x, targets = toy_batch(tasks, batch_size=4)
    step = make_step(model, x, targets, tasks)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        grads = step.shared_grads()  # per_task_grads inside: one region, not two
        step.set_shared_grad(grads.mean(0))
        step.backward_heads(retain_graph=True)  # calls step.backward: one region, not two
        step.rep_grads()
    regions = _regions(prof)
    assert len(regions[phases.PER_TASK_GRADS]) == 2
    assert len(regions[phases.BACKWARD]) == 2
    spans = sorted(regions[phases.PER_TASK_GRADS] + regions[phases.BACKWARD])
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # the labels changed nothing: heads got ∇ΣL_t, the shared parameters the mean per-task gradient
    head = model.task_parameters(next(iter(tasks)))[0]
    assert head.grad is not None and torch.isfinite(head.grad).all()
    shared = torch.cat([p.grad.reshape(-1) for p in step.shared_parameters()])
    torch.testing.assert_close(shared, grads.mean(0))


def test_phase_opens_a_region_only_when_none_of_that_name_is_open():
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with phases.phase("mtlx/test-outer"), phases.phase("mtlx/test-outer"), phases.phase("mtlx/test-inner"):
            pass
        with phases.phase("mtlx/test-outer"):  # closed again: a new region opens
            pass
    names = [event.name for event in prof.events()]
    assert names.count("mtlx/test-outer") == 2
    assert names.count("mtlx/test-inner") == 1
