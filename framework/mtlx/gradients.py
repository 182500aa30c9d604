"""Per-task gradients, computed once and fast, for every strategy that needs them.

Gradient-manipulation strategies need the ``[T, P]`` matrix of per-task
gradients w.r.t. the shared parameters, representation-level ones the
``[T, *Z.shape]`` gradients w.r.t. Z. Both come from one batched autograd
call over one-hot ``grad_outputs`` (``is_grads_batched=True``, i.e. a vmap
over the backward pass) instead of T backward passes; graphs vmap cannot
handle fall back to the loop, which gives identical values.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from .phases import PER_TASK_GRADS, phase

__all__ = ["flatten_grads", "per_task_grads", "write_flat_grad"]

def per_task_grads(
    losses: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    *,
    create_graph: bool = False,
    batched: bool = True,
) -> list[torch.Tensor]:
    """Gradients of each of the ``T`` losses w.r.t. each input.

    Args:
        losses: ``[T]`` tensor of scalar losses sharing one graph.
        inputs: tensors the gradients are taken w.r.t.
        create_graph: keep the graph of the gradients (second-order methods).
        batched: use one vmapped backward; False forces T separate passes.

    Returns:
        One tensor per input of shape ``[T, *input.shape]``; inputs a loss
        does not depend on get zeros. The graph of ``losses`` is retained.
        Runs under the profiler label ``mtlx/per-task-grads``.
    """
    if losses.dim() != 1:
        raise ValueError(f"per_task_grads expects a [T] loss vector, got shape {tuple(losses.shape)}")
    with phase(PER_TASK_GRADS):
        inputs = list(inputs)
        num_tasks = losses.shape[0]
        if batched and num_tasks > 1:
            eye = torch.eye(num_tasks, dtype=losses.dtype, device=losses.device)
            try:
                grads = torch.autograd.grad(
                    losses,
                    inputs,
                    grad_outputs=eye,
                    retain_graph=True,
                    create_graph=create_graph,
                    is_grads_batched=True,
                    allow_unused=True,
                    materialize_grads=True,
                )
                return list(grads)
            except RuntimeError as error:  # an op without a batching rule
                warnings.warn(
                    f"batched per-task gradients unavailable for this graph ({error}); "
                    "falling back to one backward pass per task",
                    RuntimeWarning,
                    stacklevel=2,
                )
        rows = [
            torch.autograd.grad(
                losses[t],
                inputs,
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
                materialize_grads=True,
            )
            for t in range(num_tasks)
        ]
        return [torch.stack(per_input) for per_input in zip(*rows, strict=True)]


def flatten_grads(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``[T, *shape]`` gradients into one ``[T, P]`` matrix."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)


def write_flat_grad(params: Sequence[torch.Tensor], flat: torch.Tensor, *, accumulate: bool = True) -> None:
    """Write a flat ``[P]`` vector into ``.grad`` of ``params`` (the layout of :func:`flatten_grads`)."""
    offset = 0
    for p in params:
        n = p.numel()
        chunk = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
        if p.grad is None or not accumulate:
            p.grad = chunk.clone()
        else:
            p.grad.add_(chunk)
    if offset != flat.numel():
        raise ValueError(f"gradient vector has {flat.numel()} elements, parameters need {offset}")
