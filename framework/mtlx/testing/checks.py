"""Conformance checks shared by the plugin test suites."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..interfaces import MTOStrategy

__all__ = ["assert_strategy_state_roundtrip", "finite_difference_grad"]


def finite_difference_grad(fn: Callable[[], torch.Tensor], param: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central-difference gradient of the scalar ``fn()`` w.r.t. ``param`` (use float64)."""
    grad = torch.zeros_like(param)
    flat, gflat = param.data.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        orig = flat[i].item()
        flat[i] = orig + eps
        up = float(fn())
        flat[i] = orig - eps
        down = float(fn())
        flat[i] = orig
        gflat[i] = (up - down) / (2 * eps)
    return grad


def assert_strategy_state_roundtrip(strategy: MTOStrategy, fresh: MTOStrategy) -> None:
    """``fresh.load_state_dict(strategy.state_dict())`` reproduces the state exactly."""
    state = strategy.state_dict()
    fresh.load_state_dict(state)
    again = fresh.state_dict()
    _assert_same(state, again, "state")


def _assert_same(a: object, b: object, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where} differs after load_state_dict"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where} keys differ: {sorted(a)} vs {sorted(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where} length differs"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
