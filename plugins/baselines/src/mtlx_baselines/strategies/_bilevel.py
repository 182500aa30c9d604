"""What MOML and FORUM share: softmax-parametrised task weights trained by Adam, and per-task gradients over
every trainable parameter (shared and task-specific), flattened.

Both originals (Baijiong-Lin/FORUM, ``LibMTL/trainer.py``) keep the weights as ``softmax(α)`` with every logit
``α_t`` initialised to ``1/T`` (so the weights start equal) and train α with ``torch.optim.Adam(lr=1e-3)``;
their per-task gradients are taken w.r.t. all of the model's parameters, zero for the heads a loss does not reach.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mtlx import StepContext

__all__ = ["SoftmaxWeights", "flat_grad", "flat_task_grads", "softmax_jacobian", "split_like", "trainable"]


def trainable(step: StepContext) -> dict[str, nn.Parameter]:
    """The step's trainable parameters (shared and every task's) by their ``named_parameters`` names."""
    ids = {id(p) for p in [*step.shared_parameters(), *step.task_parameters()]}
    return {n: p for n, p in step.model.named_parameters() if id(p) in ids}


def flat_grad(loss: torch.Tensor, params: Sequence[torch.Tensor], step: StepContext, *, retain: bool) -> torch.Tensor:
    """``∇ loss`` w.r.t. ``params`` flattened in order (zero where ``loss`` does not reach), this process's own:
    the pass on the AMP-scaled loss, unscaled after."""
    scaled = loss * step.loss_scale if step.loss_scale != 1.0 else loss
    found = torch.autograd.grad(scaled, list(params), retain_graph=retain, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g / step.loss_scale).reshape(-1)
                      for g, p in zip(found, params, strict=True)])


def flat_task_grads(losses: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor], step: StepContext, *,
                    retain: bool) -> torch.Tensor:
    """``[T, d]``: row t is :func:`flat_grad` of ``L_t`` (one backward per task), averaged over processes in one
    all-reduce. ``retain``: keep the graph after the last task's pass (a later backward through the losses)."""
    last = len(step.tasks) - 1
    rows = [flat_grad(losses[t], params, step, retain=retain or i < last) for i, t in enumerate(step.tasks)]
    return step.average_across_processes(torch.stack(rows))


def split_like(flat: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A flat ``[d]`` vector cut into tensors shaped (and typed) like ``params``."""
    chunks = flat.split([p.numel() for p in params])
    return [c.view_as(p).to(p.dtype) for c, p in zip(chunks, params, strict=True)]


def softmax_jacobian(weights: torch.Tensor) -> torch.Tensor:
    """``∂ softmax(α) / ∂α = diag(s) − s sᵀ`` at ``s = softmax(α)`` (symmetric)."""
    return torch.diag(weights) - torch.outer(weights, weights)


class SoftmaxWeights:
    """Task weights ``softmax(α)``; α starts at ``1/T`` everywhere and takes torch Adam steps (the originals').

    Created on the first step's device and dtype (the losses'); its state is α and Adam's state, for exact resume.
    """

    def __init__(self, num_tasks: int, lr: float):
        self.num_tasks, self.lr = num_tasks, lr
        self.logits: torch.Tensor | None = None
        self.adam: torch.optim.Adam | None = None

    def _build(self, like: torch.Tensor) -> None:
        self.logits = torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=like.dtype, device=like.device,
                                 requires_grad=True)
        self.adam = torch.optim.Adam([self.logits], lr=self.lr)

    def weights(self, like: torch.Tensor) -> torch.Tensor:
        """``softmax(α)``, detached (α is created like ``like`` on the first call)."""
        if self.logits is None:
            self._build(like)
        assert self.logits is not None
        return torch.softmax(self.logits.detach(), dim=0)

    def step(self, grad: torch.Tensor) -> None:
        """One Adam step of α along ``grad`` (``[T]``, the hyper-gradient)."""
        assert self.logits is not None and self.adam is not None
        self.logits.grad = grad.detach().to(self.logits)
        self.adam.step()
        self.logits.grad = None

    def state_dict(self) -> dict[str, Any]:
        if self.logits is None or self.adam is None:
            return {"logits": None, "adam": None}
        return {"logits": self.logits.detach().clone(), "adam": copy.deepcopy(self.adam.state_dict())}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["logits"] is None:
            self.logits = self.adam = None
            return
        self._build(state["logits"])
        assert self.logits is not None and self.adam is not None
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.adam.load_state_dict(state["adam"])
