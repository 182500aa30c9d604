"""Auto-Lambda (Liu, Johns and Davison, TMLR 2022, "Auto-Lambda: Disentangling Dynamic Task Relationships").

Task weights λ (initially ``init``) are learned so that one virtual SGD step of the weighted training loss
lowers the primary tasks' loss on a held-out batch (the original's ``unrolled_backward``)::

    θ' = θ − α ∇θ Σ_t λ_t L_t(θ)                              (virtual step, α: the optimiser's learning rate)
    d  = ∇θ' Σ_{p ∈ primary} L^val_p(θ')
    ∂L^val(θ')/∂λ_t = −α ∇θ L_t(θ) · d ≈ −α (L_t(θ + εd) − L_t(θ − εd)) / 2ε,   ε = 0.01 / ‖d‖

(the second-order term ∇²_{λθ} by central finite differences, as the original). λ takes an Adam step
(``lr``) on that hyper-gradient, then the step's gradient is ∇ Σ_t λ_t L_t with the new λ (heads:
``λ_t ∇L_t``). θ is every trainable parameter, shared and task-specific.

Cost per step, on top of EW's forward and backward: one more backward (the virtual step's gradient), a
forward and backward of the held-out batch at θ', and two no-grad forwards of the training batch at θ ± εd
(through :meth:`~mtlx.StepContext.losses_at`, which copies the model's buffers, nothing else). Memory: two
copies of the parameters (θ' and the perturbed θ) live at once.

Departures from the original code, each deliberate: the virtual step is plain SGD (the paper's equation;
the original adds SGD's momentum buffer and weight decay, which an optimiser-agnostic strategy cannot
read); under data parallelism the virtual step's gradient, d and the hyper-gradient are averaged over
processes, so every process keeps the same λ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from mtlx import ConfigError, MTOStrategy, StepContext, StepResult
from mtlx.errors import did_you_mean

__all__ = ["AutoLambda", "AutoLambdaState", "adam_step", "hypergradient"]

#: the finite-difference radius ‖εd‖ (the original's 0.01)
RADIUS = 0.01
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _task_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    return tuple(value)


@attrs.define
class AutoLambdaState:
    """λ and its Adam moments (torch's Adam, bias-corrected), on the losses' device once the first step ran."""

    lambdas: torch.Tensor | None = None
    exp_avg: torch.Tensor | None = None
    exp_avg_sq: torch.Tensor | None = None
    steps: int = 0


def adam_step(state: AutoLambdaState, grad: torch.Tensor, lr: float) -> None:
    """One step of torch's Adam (β = 0.9, 0.999, ε = 1e-8, no weight decay) on ``state.lambdas``."""
    assert state.lambdas is not None and state.exp_avg is not None and state.exp_avg_sq is not None
    state.steps += 1
    b1, b2 = BETAS
    state.exp_avg = b1 * state.exp_avg + (1 - b1) * grad
    state.exp_avg_sq = b2 * state.exp_avg_sq + (1 - b2) * grad * grad
    denom = (state.exp_avg_sq / (1 - b2**state.steps)).sqrt() + ADAM_EPS
    state.lambdas = state.lambdas - lr * (state.exp_avg / (1 - b1**state.steps)) / denom


def _averaged(step: StepContext, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``tensors`` averaged over processes in one all-reduce (as they are on one process)."""
    flat = step.average_across_processes(torch.cat([t.reshape(-1) for t in tensors]))
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)]


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor], step: StepContext, *, retain: bool) -> list[torch.Tensor]:
    """∇ loss w.r.t. ``params`` (zeros where unused), AMP-scaled for the pass and unscaled after, averaged."""
    scaled = loss * step.loss_scale if step.loss_scale != 1.0 else loss
    grads = torch.autograd.grad(scaled, list(params), retain_graph=retain, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g / step.loss_scale for g, p in zip(grads, params, strict=True)]
    return _averaged(step, grads)


def hypergradient(step: StepContext, lambdas: torch.Tensor, alpha: float, primary: Sequence[str]) -> torch.Tensor:
    """``∂ Σ_{p∈primary} L^val_p(θ') / ∂λ``, ``[T]``: the virtual step, d, and the central finite difference."""
    if step.heldout_losses is None:
        raise step.missing("heldout_losses", "strategy 'auto-lambda'")
    if step.recompute_losses is None:
        raise step.missing("recompute_losses", "strategy 'auto-lambda'")
    trainable = {id(p) for p in [*step.shared_parameters(), *step.task_parameters()]}
    named = {n: p for n, p in step.model.named_parameters() if id(p) in trainable}
    losses = step.loss_vector()
    g = _grads(lambdas.to(losses) @ losses, list(named.values()), step, retain=True)
    virtual = {n: (p.detach() - alpha * gi.to(p.dtype)).requires_grad_() for (n, p), gi in
               zip(named.items(), g, strict=True)}
    held = step.losses_at(step.heldout_losses, virtual)
    d = _grads(torch.stack([held[t] for t in primary]).sum(), list(virtual.values()), step, retain=False)
    eps = RADIUS / torch.cat([x.reshape(-1) for x in d]).norm().clamp_min(1e-12)
    with torch.no_grad():
        at = [step.losses_at(step.recompute_losses, {n: p.detach() + sign * eps * di.to(p.dtype)
                                                     for (n, p), di in zip(named.items(), d, strict=True)})
              for sign in (1.0, -1.0)]
        plus, minus = (torch.stack([x[t] for t in step.tasks]) for x in at)
        grad = -alpha * (plus - minus) / (2 * eps)
    return step.average_across_processes(grad)


class AutoLambda(MTOStrategy):
    """Auto-Lambda (Liu et al., TMLR 2022): weights learned by the held-out loss after a virtual step."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            lr: Adam learning rate of λ (the original's ``autol_lr``; 1e-4 for NYUv2/CityScapes, 3e-4 for CIFAR-100)
            init: initial value of every λ_t (the original's ``autol_init``)
            virtual_lr: α of the virtual step; unset: the optimiser's current learning rate (the original)
            primary: the tasks whose held-out loss λ is learned for, ``seg,depth``; empty: every task
                (multi-task mode; a subset is the original's auxiliary-learning mode)
            heldout_split: the split of the held-out batches; ``train`` (default) draws a second, independently
                shuffled pass over the training set, as the original's dense-prediction trainer does
        """

        lr: float = attrs.field(default=1e-4, validator=attrs.validators.gt(0))
        init: float = attrs.field(default=0.1)
        virtual_lr: float | None = attrs.field(default=None, validator=attrs.validators.optional(
            attrs.validators.gt(0)))
        primary: tuple[str, ...] = attrs.field(default=(), converter=_task_names)
        heldout_split: str = "train"

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        unknown = [t for t in config.primary if t not in self.tasks]
        if unknown:
            raise ConfigError(f"strategy 'auto-lambda': primary names unknown task {unknown[0]!r}"
                              f"{did_you_mean(unknown[0], self.tasks)} (tasks: {', '.join(self.tasks)})")
        self.primary = config.primary or self.tasks
        self.heldout_split = config.heldout_split
        self.state = AutoLambdaState()

    def backward(self, step: StepContext) -> StepResult:
        losses = step.loss_vector()
        s = self.state
        if s.lambdas is None:
            s.lambdas = torch.full((len(self.tasks),), float(self.config.init), dtype=losses.dtype, device=losses.device)
            s.exp_avg, s.exp_avg_sq = torch.zeros_like(s.lambdas), torch.zeros_like(s.lambdas)
        alpha = self.config.virtual_lr if self.config.virtual_lr is not None else step.learning_rate
        if alpha is None:
            raise step.missing("learning_rate", "strategy 'auto-lambda'")
        adam_step(s, hypergradient(step, s.lambdas, alpha, self.primary), self.config.lr)
        weights = s.lambdas.detach()
        step.backward((weights.to(losses) * losses).sum())
        return StepResult(weights=dict(zip(self.tasks, weights.tolist(), strict=True)))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "auto_lambda": attrs.asdict(self.state)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.state = AutoLambdaState(**state["auto_lambda"])
