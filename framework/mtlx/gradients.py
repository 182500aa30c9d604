"""Per-task gradients at the cost of the exact maths, for every strategy that needs them.

Gradient-manipulation strategies need the ``[T, P]`` matrix of per-task
gradients w.r.t. the shared parameters, representation-level ones (Rep-MTL,
GradDrop, MGDA-UB) the ``[T, *Z.shape]`` gradients w.r.t. Z.

Each task's gradient is taken from that task's own scalar loss, never from an
element of a stacked ``[T]`` loss vector: the stack's backward hands every
task's graph a cotangent (zero for all tasks but one), so every head would be
traversed for every task (T² head backwards, and T² double backwards through
the saliency graph of second-order methods). From the task's own loss, head
t is traversed once, for task t only.

For the shared parameters two exact methods exist (:data:`METHODS`, ``loop`` and ``two-stage``: README.md);
``two-stage`` needs a single shared Z through which the losses reach every shared parameter
(``MultiTaskModel.has_shared_representation``). ``auto`` picks by device, by measurement (benchmarks/README.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .phases import PER_TASK_GRADS, phase

__all__ = ["METHODS", "flatten_grads", "grad_or_zeros", "per_task_grads", "resolve_method", "write_flat_grad"]

#: How per-task gradients w.r.t. the shared parameters are computed (``train.per_task_grads``).
METHODS = ("auto", "loop", "two-stage")

#: What ``auto`` means per device type, chosen by ``benchmarks/test_bench_grads.py``.
AUTO_METHOD = {"cpu": "loop", "cuda": "two-stage"}


def resolve_method(method: str, device: torch.device | str) -> str:
    """``loop`` or ``two-stage`` for ``method`` on ``device`` (``auto`` looks up :data:`AUTO_METHOD`)."""
    if method not in METHODS:
        raise ValueError(f"per-task gradient method {method!r}: expected one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    return AUTO_METHOD.get(torch.device(device).type, "two-stage")


def _check_losses(losses: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(losses, torch.Tensor):
        raise TypeError(
            "per_task_grads takes the T scalar losses themselves, not a stacked loss vector: the gradient of "
            "an element of a stack traverses every task's head"
        )
    losses = list(losses)
    for t, loss in enumerate(losses):
        if loss.dim() != 0:
            raise ValueError(f"per_task_grads: loss {t} has shape {tuple(loss.shape)}, expected a scalar")
    return losses


def grad_or_zeros(outputs: Any, inputs: Sequence[torch.Tensor], **options: Any) -> tuple[torch.Tensor, ...]:
    """``torch.autograd.grad(..., allow_unused=True)`` with zeros for inputs the outputs do not reach.

    What ``materialize_grads=True`` does, written out: on torch 2.4 and 2.5 (seen) that flag
    made float32 zeros for float64 inputs ("Found dtype Float but expected Double").
    """
    grads = torch.autograd.grad(outputs, inputs, allow_unused=True, **options)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs, strict=True))


def _grad(output: torch.Tensor, inputs: list[torch.Tensor], create_graph: bool, grad_output=None) -> tuple:
    return grad_or_zeros(output, inputs, grad_outputs=grad_output, retain_graph=True, create_graph=create_graph)


def per_task_grads(
    losses: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    *,
    create_graph: bool = False,
    through: torch.Tensor | None = None,
    on_fallback: Callable[[], None] | None = None,
) -> list[torch.Tensor]:
    """Gradients of each of the ``T`` scalar losses w.r.t. each input, each head traversed once.

    Args:
        losses: the ``T`` scalar losses (each from its own head; not a stacked vector).
        inputs: tensors the gradients are taken w.r.t.
        create_graph: keep the graph of the gradients (second-order methods).
        through: the two-stage method: a tensor (the shared representation Z)
            through which every loss reaches every input. The T gradients
            ``∂L_t/∂Z`` are pushed into ``inputs`` in one vmapped backward.
            ``None``: one backward pass per loss (the loop).
        on_fallback: called when the vmapped backward is unavailable for this
            graph (an op without a batching rule) and the rows were taken one by
            one instead: the caller stops asking for two-stage (the engine keeps
            to the loop for the rest of the run).

    Returns:
        One tensor per input of shape ``[T, *input.shape]``; inputs a loss
        does not depend on get zeros. The graphs are retained. Runs under the
        profiler label ``mtlx/per-task-grads``.
    """
    losses = _check_losses(losses)
    inputs = list(inputs)
    with phase(PER_TASK_GRADS):
        if through is not None and len(losses) > 1:
            rows = torch.stack([_grad(loss, [through], create_graph)[0] for loss in losses])
            try:
                grads = torch.autograd.grad(
                    through,
                    inputs,
                    grad_outputs=rows,
                    retain_graph=True,
                    create_graph=create_graph,
                    is_grads_batched=True,
                    allow_unused=True,
                )
                return [x.new_zeros(len(rows), *x.shape) if g is None else g for g, x in zip(grads, inputs, strict=True)]
            except torch.OutOfMemoryError:
                raise  # not a missing batching rule: the loop would not fit either
            except RuntimeError as error:  # an op without a batching rule
                warnings.warn(
                    f"two-stage per-task gradients unavailable for this graph ({error}); "
                    "falling back to one backward pass per task from Z",
                    RuntimeWarning,
                    stacklevel=2,
                )
                if on_fallback is not None:
                    on_fallback()
            per_row = [_grad(through, inputs, create_graph, row) for row in rows]
        else:
            per_row = [_grad(loss, inputs, create_graph) for loss in losses]
        return [torch.stack(per_input) for per_input in zip(*per_row, strict=True)]


def flatten_grads(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``[T, *shape]`` gradients into one ``[T, P]`` matrix."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)


def write_flat_grad(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Add a flat ``[P]`` vector to ``.grad`` of ``params`` (the layout of :func:`flatten_grads`)."""
    sizes = [p.numel() for p in params]
    if sum(sizes) != flat.numel():
        raise ValueError(f"gradient vector has {flat.numel()} elements, parameters need {sum(sizes)}")
    for p, chunk in zip(params, flat.split(sizes), strict=True):
        chunk = chunk.view_as(p).to(p.dtype)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.add_(chunk)
