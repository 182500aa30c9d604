"""MOML (Ye, Lin, Yue, Guo, Xiao and Zhang, NeurIPS 2021 / AIJ 2024, "Multi-Objective Meta Learning").

Task weights ``s = softmax(α)`` are the upper-level variable of a bilevel problem whose upper level has one
objective per task (each task's loss on a held-out batch) and whose lower level is the weighted training loss.
Per step, with G_f the per-task gradients of the training batch at θ (``[T, d]``, every trainable parameter)::

    θ'    = θ − η sᵀ G_f                                  (one SGD step of the lower level, η = ``eta``)
    H_t   = ∂ L^val_t(θ') / ∂α = −η (G_f ∇θ' L^val_t(θ'))ᵀ J_s,   J_s = diag(s) − s sᵀ
    h     = Σ_t γ_t H_t,  γ = argmin_{γ ∈ simplex} ‖Σ_t γ_t H_t‖²     (MGDA over the T hyper-gradients)

α takes an Adam step (``lr``) along h; the step's gradient is then ``∇ Σ_t s_t L_t`` with the new s (heads:
``s_t ∇L_t``). This is the first-order-exact form for one lower-level step that the authors released as their
efficient MOML for multi-task learning (Baijiong-Lin/FORUM, ``Trainer.train_MOML``); the hyper-gradient only
needs the T x T inner products ``G_f G_Fᵀ``, no second-order term. The lower level is the step's own training
batch, at θ only (G_f from its forward), so unlike FORUM it needs no re-run of it (``train_losses``); the upper
level is the held-out batch, at θ'.

Cost per step, on top of EW's forward and backward: T backward passes of the training batch (G_f, graph kept),
one forward of the held-out batch at θ' and T backward passes of it. Memory: two ``[T, d]`` gradient matrices
and θ' (d: every trainable parameter).

Choices that follow the released code: ``eta`` 0.1 (NYUv2, Office; 0.01 for QM9) and ``lr`` 1e-3 (its
``ul_alpha_optimizer``), α initialised to 1/T, MGDA without gradient normalisation (``--weighting MGDA
--mgda_gn none``; ``aggregation=ew`` is its ``--weighting EW``, the plain sum), the per-task gradients over
all parameters. Departures, each deliberate: MGDA's min-norm problem is solved exactly (the core's quadprog
solver) instead of by Frank-Wolfe iterations; the model trains on the step's batch only (the released code
trains on the lower- and upper-level batches concatenated: here the held-out batch only trains α, as in the
paper's bilevel formulation and mtlx's Auto-Lambda); under data parallelism every gradient is averaged over
processes, so every process keeps the same α.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from mtlx import MTOStrategy, StepContext, StepResult

from ..linalg import gram, min_norm_weights
from ._bilevel import SoftmaxWeights, flat_task_grads, softmax_jacobian, split_like, trainable

__all__ = ["MOML", "hypergradients"]


def hypergradients(step: StepContext, weights: torch.Tensor, eta: float) -> torch.Tensor:
    """``H``, ``[T, T]``: row t is ``∂ L^val_t(θ') / ∂α`` (the held-out batch's task t at the virtual step)."""
    if step.heldout_losses is None:
        raise step.missing("heldout_losses", "strategy 'moml'")
    named = trainable(step)
    params = list(named.values())
    g_f = flat_task_grads(step.losses, params, step, retain=True)
    virtual = {n: (p.detach() - eta * d).requires_grad_()
               for (n, p), d in zip(named.items(), split_like(weights.to(g_f) @ g_f, params), strict=True)}
    held = step.losses_at(step.heldout_losses, virtual)
    g_val = flat_task_grads(held, list(virtual.values()), step, retain=False)
    return -eta * (g_val @ g_f.T) @ softmax_jacobian(weights.to(g_f))


class MOML(MTOStrategy):
    """MOML (Ye et al., NeurIPS 2021): softmax task weights trained by MGDA over the tasks' held-out hyper-gradients."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            eta: η, the learning rate of the virtual lower-level SGD step (the original's ``--eta``: 0.1 for
                NYUv2 and Office, 0.01 for QM9)
            lr: Adam learning rate of the weights' logits α (the original's upper-level Adam, 1e-3)
            aggregation: how the T hyper-gradients make α's update: ``mgda`` (the min-norm point of their
                convex hull, the paper's multi-gradient descent) or ``ew`` (their sum)
            heldout_split: the split of the held-out (upper-level) batches; ``train`` (default) draws a second,
                independently shuffled pass over the training set, as the original does for multi-task learning
        """

        eta: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
        lr: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0))
        aggregation: str = attrs.field(default="mgda", validator=attrs.validators.in_(("mgda", "ew")))
        heldout_split: str = "train"

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.heldout_split = config.heldout_split
        self.alpha = SoftmaxWeights(len(self.tasks), config.lr)

    def backward(self, step: StepContext) -> StepResult:
        losses = step.loss_vector()
        h = hypergradients(step, self.alpha.weights(like=losses), self.config.eta)
        if self.config.aggregation == "mgda":
            h = min_norm_weights(gram(h)).to(h) @ h
        else:
            h = h.sum(0)
        self.alpha.step(h)
        weights = self.alpha.weights(like=losses)
        step.backward((weights.to(losses) * losses).sum())
        return StepResult(weights=dict(zip(self.tasks, weights.tolist(), strict=True)))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "moml": self.alpha.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.alpha.load_state_dict(state["moml"])
