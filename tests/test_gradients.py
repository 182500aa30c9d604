"""Per-task gradients: exact, and each head traversed once (mtlx.gradients, StepContext helpers)."""

from __future__ import annotations

import attrs
import pytest
import torch

import mtlx
from mtlx.gradients import METHODS, flatten_grads, per_task_grads, resolve_method
from mtlx_testing import HeadTraversals, ToyModel, make_step, toy_batch, toy_tasks

T = 3


@pytest.fixture
def problem():
    torch.manual_seed(0)
    tasks = toy_tasks(T)
    model = ToyModel(tasks).double()
    x, targets = toy_batch(tasks)
    return tasks, model, x.double(), targets


def _grads(outputs, inputs, **options):
    """Reference gradients, zeros where an input is unused (materialize_grads, portable to torch 2.4)."""
    grads = torch.autograd.grad(outputs, inputs, allow_unused=True, **options)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs, strict=True))


def _reference(model, x, targets, tasks, wrt):
    """Independent reference: a fresh forward per task, the gradient of that task's loss alone."""
    rows = []
    for name, spec in tasks.items():
        z = model.encode(x)
        loss = spec.loss(model.heads[name](z), targets[name])
        inputs = [z] if wrt == "z" else list(model.shared_parameters())
        grads = _grads(loss, inputs)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def _counted_step(problem, grad_method="auto"):
    tasks, model, x, targets = problem
    counter = HeadTraversals(model.heads)
    with counter.counting():
        step = make_step(model, x, targets, tasks, grad_method=grad_method)
    return step, counter


@pytest.mark.parametrize("method", ["loop", "two-stage"])
def test_shared_grads_traverse_each_head_once_and_are_exact(problem, method):
    step, counter = _counted_step(problem, method)
    grads = step.shared_grads()
    assert [counter.first(t) for t in step.tasks] == [1] * T
    assert [counter.second(t) for t in step.tasks] == [0] * T
    assert [counter.batched(t) for t in step.tasks] == [0] * T
    tasks, model, x, targets = problem
    torch.testing.assert_close(grads, _reference(model, x, targets, tasks, "shared").float(), rtol=1e-5, atol=1e-7)


def test_rep_grads_traverse_each_head_once_and_are_exact(problem):
    step, counter = _counted_step(problem)
    grads = step.rep_grads()
    assert [counter.first(t) for t in step.tasks] == [1] * T
    assert [counter.batched(t) for t in step.tasks] == [0] * T
    tasks, model, x, targets = problem
    torch.testing.assert_close(grads.flatten(1), _reference(model, x, targets, tasks, "z").float())


def test_saliency_graph_holds_each_head_once(problem):
    """create_graph: differentiating Σ_t ‖S_t‖² double-backpropagates head t once, for task t only."""
    step, counter = _counted_step(problem)
    saliencies = step.rep_grads(create_graph=True)
    assert [counter.first(t) for t in step.tasks] == [1] * T
    assert [counter.batched(t) for t in step.tasks] == [0] * T
    saliencies.pow(2).sum().backward()
    assert [counter.second(t) for t in step.tasks] == [1] * T


@pytest.mark.parametrize("through_z", [False, True])
def test_per_task_grads_function(problem, through_z):
    tasks, model, x, targets = problem
    counter = HeadTraversals(model.heads)
    with counter.counting():
        z = model.encode(x)
        preds = model.decode(z)
    losses = [spec.loss(preds[t], targets[t]) for t, spec in tasks.items()]
    grads = per_task_grads(losses, model.shared_parameters(), through=z if through_z else None)
    assert [counter.first(t) for t in tasks] == [1] * T
    torch.testing.assert_close(flatten_grads(grads), _reference(model, x, targets, tasks, "shared"))


def test_a_stacked_loss_vector_is_refused(problem):
    step, _ = _counted_step(problem)
    with pytest.raises(TypeError, match="not a stacked loss vector"):
        per_task_grads(step.loss_vector(), step.shared_parameters())


def _losses_through_z(problem):
    tasks, model, x, targets = problem
    z = model.encode(x)
    preds = model.decode(z)
    return z, [spec.loss(preds[t], targets[t]) for t, spec in tasks.items()]


def _batched_grad_raises(monkeypatch, error: Exception) -> None:
    """``torch.autograd.grad`` raises ``error`` for vmapped (``is_grads_batched``) calls only."""
    real_grad = torch.autograd.grad

    def grad(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise error
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", grad)


def test_two_stage_falls_back_to_rows_when_vmap_cannot(problem, monkeypatch):
    """An op without a batching rule: the same gradients from one backward per row, with a warning."""
    tasks, model, x, targets = problem
    z, losses = _losses_through_z(problem)
    _batched_grad_raises(monkeypatch, RuntimeError("no batching rule"))
    with pytest.warns(RuntimeWarning, match="falling back"):
        grads = per_task_grads(losses, model.shared_parameters(), through=z)
    torch.testing.assert_close(flatten_grads(grads), _reference(model, x, targets, tasks, "shared"))


def test_resolve_method():
    assert resolve_method("loop", "cuda") == "loop"
    assert resolve_method("two-stage", "cpu") == "two-stage"
    assert resolve_method("auto", "cpu") in METHODS[1:]
    assert resolve_method("auto", "cuda") in METHODS[1:]
    with pytest.raises(ValueError, match="expected one of"):
        resolve_method("batched", "cpu")


def test_two_stage_does_not_swallow_out_of_memory(problem, monkeypatch):
    _, model, _, _ = problem
    z, losses = _losses_through_z(problem)
    _batched_grad_raises(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.OutOfMemoryError):
        per_task_grads(losses, model.shared_parameters(), through=z)


class _MeanGradient(mtlx.MTOStrategy):
    """A minimal gradient method: the mean of the per-task shared gradients (uses StepContext.shared_grads)."""

    @attrs.frozen
    class Config:
        pass

    def backward(self, step):
        step.set_shared_grad(step.shared_grads().mean(0))
        step.backward_heads()
        return mtlx.StepResult()


def test_a_two_stage_fallback_is_not_retried_on_later_steps(monkeypatch):
    """Once the vmapped backward fails for a model's graph, the following steps use the loop directly."""
    import types

    def mtlx_register(registry):
        registry.strategies.register("mean-gradient", _MeanGradient)

    manager = mtlx.PluginManager()
    manager.register_object(types.SimpleNamespace(mtlx_register=mtlx.hookimpl(mtlx_register)), "m")
    attempts = []
    real_grad = torch.autograd.grad

    def grad(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            attempts.append(1)
            raise RuntimeError("no batching rule")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", grad)
    tasks = toy_tasks(3)
    model = ToyModel(tasks)
    mtl = mtlx.MTL("mean-gradient", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads),
                   per_task_grads="two-stage", registries=manager.registries)
    x, targets = toy_batch(tasks)
    with pytest.warns(RuntimeWarning, match="falling back"):
        for _ in range(3):
            z = model.encoder(x)
            mtl.backward({t: tasks[t].loss(model.heads[t](z), targets[t]) for t in tasks}, features=z)
            mtl.step()
    assert attempts == [1]
    assert mtl.per_task_grads == "loop"
