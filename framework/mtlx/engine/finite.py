"""Finiteness of many tensors at once, without a host sync per tensor.

``max |x|`` of a tensor is finite exactly when every element is (it cannot
overflow as a sum of squares can), and ``torch._foreach_norm`` computes it
for a list of tensors in fused kernels; the flags stay on the device until the
caller reads them together with whatever else it needs from the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from .. import distributed

__all__ = ["all_processes_ok", "finite_flags", "nonfinite_loss", "shown", "tasks_with_nonfinite_gradients",
           "watched_tensors"]


def finite_flags(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One bool per tensor (non-empty, floating, on one device): whether all of its elements are finite."""
    if not tensors:
        return torch.ones(0, dtype=torch.bool)
    norms = torch._foreach_norm([t.detach() for t in tensors], float("inf"))
    return torch.stack([n.isfinite() for n in norms])


def watched_tensors(model: torch.nn.Module, extra: Iterable[torch.Tensor] = ()) -> tuple[list[str], list[torch.Tensor]]:
    """Names (``parameter 'x'`` / ``buffer 'y'``) and tensors of the model's floating state and ``extra``."""
    named = [(f"parameter {n!r}", p) for n, p in model.named_parameters()]
    named += [(f"buffer {n!r}", b) for n, b in model.named_buffers()]
    named += [(f"strategy parameter {i}", p) for i, p in enumerate(extra)]
    kept = [(n, t) for n, t in named if t.is_floating_point() and t.numel() > 0]
    return [n for n, _ in kept], [t for _, t in kept]


def all_processes_ok(flags: torch.Tensor) -> torch.Tensor:
    """``flags`` (bools) AND-ed over processes, as floats (1.0: true everywhere)."""
    flags = flags.float()
    return distributed.all_reduce_mean(flags) if distributed.is_distributed() else flags


def shown(value: float) -> str:
    """A non-finite loss as it is, a finite one as found non-finite elsewhere (the flags are AND-ed over processes)."""
    return str(value) if not math.isfinite(value) else "NaN/Inf on another process"


def nonfinite_loss(losses: Mapping[str, torch.Tensor], everywhere: bool = True) -> str | None:
    """``the loss of task 't' is nan`` for the first task whose loss is NaN/Inf, None when all are finite.

    ``everywhere``: on any process (every process calls this and takes the same decision, which the gradient
    sync needs); otherwise only this process's losses are read. One host read.
    """
    finite = torch.stack([v.detach().float() for v in losses.values()]).isfinite()
    ok = (all_processes_ok(finite) if everywhere else finite.float()).tolist()
    for (task, loss), flag in zip(losses.items(), ok, strict=True):
        if flag < 1.0:
            return f"the loss of task {task!r} is {shown(float(loss.detach()))}"
    return None


def tasks_with_nonfinite_gradients(model: torch.nn.Module, params: Iterable[torch.nn.Parameter], device: torch.device,
                                   losses: Callable[[], Mapping[str, torch.Tensor]]) -> list[str]:
    """The tasks whose own gradient w.r.t. ``params`` is NaN/Inf, from ``losses()``: a second forward on the step's
    batch (failure path only; the model's buffers and the random generators are restored, so the run is as
    without it)."""
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    params = [p for p in params if p.requires_grad]
    bad = []
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for task, loss in losses().items():
                grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                if not bool(finite_flags([g for g in grads if g is not None and g.numel() > 0]).all()):
                    bad.append(task)
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])
    return bad
