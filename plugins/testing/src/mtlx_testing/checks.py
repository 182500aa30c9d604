"""Conformance checks shared by the plugin test suites."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from mtlx.interfaces import MTOStrategy, StepContext

__all__ = ["assert_same", "assert_strategy_state_roundtrip", "flat", "task_gradients"]


def assert_strategy_state_roundtrip(strategy: MTOStrategy, fresh: MTOStrategy) -> None:
    """``fresh.load_state_dict(strategy.state_dict())`` reproduces the state exactly."""
    state = strategy.state_dict()
    fresh.load_state_dict(state)
    assert_same(state, fresh.state_dict(), "load_state_dict: state")


def assert_same(a: object, b: object, where: str) -> None:
    """``a`` and ``b`` hold equal tensors and values (nested mappings, sequences, ``to_dict`` objects);
    the assertion names the first place they differ."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping) and a.keys() == b.keys(), f"{where} keys differ: {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}" if isinstance(k, str) else f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where} length differs"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif hasattr(a, "to_dict"):
        assert_same(a.to_dict(), b.to_dict(), where)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def flat(grads: Iterable[torch.Tensor]) -> torch.Tensor:
    """The gradients of several parameter tensors as one vector, in parameter order."""
    return torch.cat([g.reshape(-1) for g in grads])


def task_gradients(
    step: StepContext, shared: Sequence[torch.nn.Parameter], heads: Mapping[str, Sequence[torch.nn.Parameter]]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reference a gradient method is checked against, by plain autograd, one task at a time: the ``[T, P]``
    Jacobian of the step's losses w.r.t. ``shared`` and each task's gradient w.r.t. its own head (flat)."""
    grad = lambda t, params: flat(torch.autograd.grad(step.losses[t], list(params), retain_graph=True))
    jacobian = torch.stack([grad(t, shared) for t in step.losses])
    return jacobian, {t: grad(t, heads[t]) for t in step.losses}
