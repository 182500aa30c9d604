"""FORUM (Ye, Lin, Cao, Zhang and Tsang, ECAI 2024, "A First-Order Multi-Gradient Algorithm for Multi-Objective
Bi-Level Optimization").

The bilevel problem of MOML (upper level: each task's loss; lower level: ``f(α, θ) = Σ_t softmax(α)_t L_t(θ)``)
rewritten with the value-function constraint ``q(α, θ) = f(α, θ) − f(α, θ_K(α)) ≤ 0``, θ_K being K plain SGD
steps (``inner_steps``, learning rate ``eta``) on f from θ. Per step, on z = (α, θ)::

    g_q = ∇z q = (J_s (L(θ) − L(θ_K)),  ∇θ f(α, θ))             (J_s = diag(s) − s sᵀ, θ_K held fixed)
    ĝ_t = (0, ∇θ F_t(θ) / (1e-8 + ‖∇θ F_t(θ)‖))                (F_t: task t's upper-level loss)
    π_t = ρ − ĝ_t · g_q / (‖g_q‖² + 1e-8)
    w   = argmin_{w ≥ 0} ‖Σ_t w_t ĝ_t + w_q g_q‖² − w_q ρ (‖g_q‖² + 1e-8)
          s.t. Σ_t w_t = 1,  w_q ≥ Σ_t w_t π_t                      (the paper's problem (14), a QP in T + 1)
    λ  ← λ + (e + 1)^(−3/4) (w_{1..T} − λ)                          (λ from 0; e: the 0-based epoch)
    ν   = max(Σ_t λ_t π_t, 0),   d = Σ_t λ_t ĝ_t + ν g_q            (problem (12))

θ's gradient is d's θ part; α = the weights' logits takes an Adam step (``lr``) along d's α part, ν g_q's.

Batches, as the paper defines the problem (lower level: the training loss; upper level: the tasks' validation
losses): the lower level (f and its K inner steps) runs on the step's own training batch, forwarded again at
each inner iterate θ_k through ``StepContext.train_losses`` (``needs_train_losses``) and ``losses_at``; the upper
level (the F_t) runs on the held-out batch of ``heldout_split``. With ``heldout_split=val`` the upper level is
the validation set's; with ``train`` (the default) the two are independent training batches, as the released
code draws them for multi-task learning. (Before ``StepContext.train_losses``, only the held-out batch could be
re-run with graph, and the roles were swapped: the same algorithm for ``train``, but for ``val`` the lower level
fitted on val, the reverse of the paper.)

Cost per step, on top of EW's forward: on the step's batch one backward at θ, K forwards and backwards of the
inner steps and one no-grad forward at θ_K; on the held-out batch one forward and T backward passes; a QP in
T + 1 variables. Memory: the ``[T, d]`` normalised gradients and one copy of θ (d: every trainable parameter).

Choices that follow the released code (Baijiong-Lin/FORUM, ``Trainer.train_FORUM``): ρ = 0.1, η = 0.1, K = 5
(its README's NYUv2 and Office commands; η = 0.01 for QM9), α initialised to 1/T and trained by Adam with lr
1e-3, the inner loop stopping early once f exceeds 1e5, the normalisation of the upper-level gradients, the
1e-8s, and the epoch-based step size of λ. Departures, each deliberate: problem (14) is solved exactly by
quadprog's active-set method (the original: cvxpy); the returned ``weights`` are ``softmax(α)`` of the step's
lower-level loss (θ's gradient also holds the upper-level gradients, weighted λ: logged as ``lambda/<task>``,
with ``nu``); under data parallelism every gradient and loss is averaged over processes, so all keep the same
α and λ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import quadprog
import torch

from mtlx import MTOStrategy, StepContext, StepResult
from mtlx.gradients import write_flat_grad
from mtlx.phases import BACKWARD, phase

from ..errors import SolverError
from ._bilevel import SoftmaxWeights, flat_grad, flat_task_grads, softmax_jacobian, split_like, trainable

__all__ = ["FORUM", "ForumDirection", "direction", "solve_problem_14"]

#: the inner loop stops once the lower-level loss exceeds this (the original's divergence guard)
DIVERGED = 1e5
EPS = 1e-8


def solve_problem_14(K: np.ndarray, pi: np.ndarray, c: float) -> np.ndarray:
    """``argmin_{w ≥ 0} wᵀKw − c w_q`` s.t. ``Σ_{t<T} w_t = 1``, ``w_q ≥ Σ_t π_t w_t`` (w_q: the last entry).

    ``K``: the ``(T+1) x (T+1)`` Gram matrix of ``ĝ_1..ĝ_T, g_q``. Solved by quadprog on ``K / tr K`` (the
    optimum does not change with the scale), with the smallest ridge that makes the semidefinite K definite.
    """
    n = K.shape[0]
    K = (K + K.T) / 2
    scale = float(np.trace(K))
    if scale <= 0.0:
        scale = 1.0
    Kn = K / scale
    ridge = max(-float(np.linalg.eigvalsh(Kn)[0]), 0.0) + 1e-12
    a = np.zeros(n)
    a[-1] = c / scale
    simplex = np.concatenate([np.ones(n - 1), [0.0]])
    feasible = np.concatenate([-pi, [1.0]])
    constraints = np.stack([simplex, feasible, *np.eye(n)], axis=1)
    bounds = np.concatenate([[1.0, 0.0], np.zeros(n)])
    try:
        w = quadprog.solve_qp(2 * Kn + 2 * ridge * np.eye(n), a, constraints, bounds, meq=1)[0]
    except ValueError as error:
        raise SolverError(f"FORUM's problem (14) failed (quadprog: {error}); Gram matrix {K.tolist()}, "
                          f"pi {pi.tolist()}") from None
    return np.clip(w, 0.0, None)


@attrs.frozen
class ForumDirection:
    """One step's update: θ's gradient d_θ (flat), α's gradient, and ν (λ already updated)."""

    theta: torch.Tensor
    alpha: torch.Tensor
    nu: float


def _lower_level(step: StepContext, named: Mapping[str, torch.Tensor], weights: torch.Tensor, eta: float,
                 inner_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """g_q = ∇(α, θ) q: ``(J_s (L(θ) − L(θ_K)), ∇θ f(α, θ))`` on the step's training batch (at θ: the step's own
    forward), θ_K by K SGD steps from θ."""
    assert step.train_losses is not None
    params = list(named.values())

    def f_at(theta: Mapping[str, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        train = step.losses if theta is None else step.losses_at(step.train_losses, theta)
        losses = torch.stack([train[t] for t in step.tasks])
        return weights.to(losses) @ losses, losses

    def grad_of(f: torch.Tensor, wrt: Sequence[torch.Tensor]) -> torch.Tensor:
        return step.average_across_processes(flat_grad(f, wrt, step, retain=False))

    f0, losses0 = f_at(None)
    grad_theta = grad_of(f0, params)
    theta = {n: p.detach() for n, p in named.items()}
    for _ in range(inner_steps):
        leaves = {n: x.detach().requires_grad_() for n, x in theta.items()}
        f, _ = f_at(leaves)
        if float(step.average_across_processes(f.detach())) > DIVERGED:
            break
        g = split_like(grad_of(f, list(leaves.values())), params)
        theta = {n: x - eta * gi for (n, x), gi in zip(theta.items(), g, strict=True)}
    with torch.no_grad():
        _, losses_k = f_at(theta)
    gap = step.average_across_processes((losses0.detach() - losses_k).to(grad_theta))
    grad_alpha = softmax_jacobian(weights.to(grad_theta)) @ gap
    return grad_alpha, grad_theta


def direction(step: StepContext, weights: torch.Tensor, lambdas: torch.Tensor, *, rho: float, eta: float,
              inner_steps: int) -> ForumDirection:
    """The step's update (problems (14) and (12)) at softmax weights ``weights``; updates ``lambdas`` in place."""
    for field in ("heldout_losses", "train_losses"):
        if getattr(step, field) is None:
            raise step.missing(field, "strategy 'forum'")
    named = trainable(step)
    q_alpha, q_theta = _lower_level(step, named, weights, eta, inner_steps)
    upper = flat_task_grads(step.heldout_losses(), list(named.values()), step, retain=False).to(q_theta)
    upper = upper / (EPS + upper.norm(dim=1, keepdim=True))
    q_norm2 = q_alpha @ q_alpha + q_theta @ q_theta
    cross = upper @ q_theta  # ĝ_t · g_q: ĝ_t's α part is zero
    pi = rho - cross / (q_norm2 + EPS)
    gram = torch.cat([torch.cat([upper @ upper.T, cross[:, None]], 1),
                      torch.cat([cross, q_norm2[None]])[None]], 0)
    pi64 = pi.detach().cpu().double().numpy()
    w = solve_problem_14(gram.detach().cpu().double().numpy(), pi64, rho * (float(q_norm2) + EPS))
    rate = 1.0 / (step.epoch + 1) ** 0.75
    lambdas += rate * (torch.from_numpy(w[:-1]).to(lambdas) - lambdas)
    nu = max(float(lambdas.double().cpu() @ torch.from_numpy(pi64)), 0.0)
    theta = lambdas.to(upper) @ upper + nu * q_theta
    return ForumDirection(theta=theta, alpha=nu * q_alpha, nu=nu)


class FORUM(MTOStrategy):
    """FORUM (Ye et al., ECAI 2024): a first-order multi-gradient method for the multi-objective bilevel problem."""

    needs_train_losses = True  # the inner steps re-run the step's batch at θ_k

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            rho: ρ of the constraint's relaxation π_t = ρ − ĝ_t·g_q/‖g_q‖² (the original's ``--rho``, 0.1)
            eta: η, the learning rate of the inner SGD steps of the lower level (``--eta``: 0.1 for NYUv2 and
                Office, 0.01 for QM9)
            inner_steps: K, the inner SGD steps that approximate the lower level's solution (``--inner_step``, 5)
            lr: Adam learning rate of the weights' logits α (the original's upper-level Adam, 1e-3)
            heldout_split: the split of the upper-level batches (see the module's docstring): ``val`` for the
                paper's validation losses; ``train`` (default) draws a second, independently shuffled pass over the
                training set, as the original does for multi-task learning
        """

        rho: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
        eta: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
        inner_steps: int = attrs.field(default=5, validator=attrs.validators.ge(1))
        lr: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0))
        heldout_split: str = "train"

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.heldout_split = config.heldout_split
        self.alpha = SoftmaxWeights(len(self.tasks), config.lr)
        self.lambdas: torch.Tensor | None = None

    def backward(self, step: StepContext) -> StepResult:
        losses = step.loss_vector()
        weights = self.alpha.weights(like=losses)
        if self.lambdas is None:
            self.lambdas = torch.zeros(len(self.tasks), dtype=torch.float64)
        c = self.config
        d = direction(step, weights, self.lambdas, rho=c.rho, eta=c.eta, inner_steps=c.inner_steps)
        self.alpha.step(d.alpha)
        params = list(trainable(step).values())
        with phase(BACKWARD):
            write_flat_grad(params, d.theta * step.loss_scale if step.loss_scale != 1.0 else d.theta)
        diagnostics = {"nu": d.nu, **{f"lambda/{t}": float(v) for t, v in zip(self.tasks, self.lambdas, strict=True)}}
        return StepResult(weights=dict(zip(self.tasks, weights.tolist(), strict=True)), diagnostics=diagnostics)

    def state_dict(self) -> dict[str, Any]:
        lambdas = None if self.lambdas is None else self.lambdas.clone()
        return {**super().state_dict(), "forum": {**self.alpha.state_dict(), "lambdas": lambdas}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.alpha.load_state_dict(state["forum"])
        lambdas = state["forum"]["lambdas"]
        self.lambdas = None if lambdas is None else lambdas.clone()
