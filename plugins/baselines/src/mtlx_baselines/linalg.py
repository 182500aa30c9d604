"""Solvers on the T x T Gram matrix K = G Gᵀ that several aggregators share.

They work on K, never on the ``[T, P]`` gradients, so their cost does not
grow with the model; they run in float64 numpy (T is small, and numpy's
per-call overhead is a fraction of torch's at this size).
"""

from __future__ import annotations

import warnings

import numpy as np
import quadprog
import torch

from .errors import SolverError

__all__ = ["alpha_fair_weights", "gram", "min_norm_weights"]


def gram(G: torch.Tensor) -> torch.Tensor:
    """``K = G Gᵀ`` (``[T, T]``) of the per-task gradients ``G`` (``[T, N]``)."""
    return G @ G.T


def _symmetric64(K: torch.Tensor) -> np.ndarray:
    K = K.detach().to("cpu", torch.float64).numpy()
    return (K + K.T) / 2


def _like(values: np.ndarray, K: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(values).to(dtype=K.dtype, device=K.device)


def min_norm_weights(K: torch.Tensor) -> torch.Tensor:
    """``argmin_{α ∈ simplex} αᵀKα``: the min-norm point of the convex hull of the gradients (MGDA).

    Solved exactly as a QP by quadprog's dual active-set method on ``K / tr K``.
    """
    return _like(_min_norm(_symmetric64(K)), K)


def _min_norm(K: np.ndarray) -> np.ndarray:
    num_tasks = K.shape[0]
    trace = float(np.trace(K))
    if num_tasks == 1 or trace <= 0.0:  # one task, or every gradient is zero: any α is optimal
        return np.full(num_tasks, 1.0 / num_tasks)
    Kn = K / trace
    # quadprog needs a positive definite matrix; the Gram of dependent gradients is only semidefinite (with
    # rounding, slightly indefinite): add the smallest ridge that fixes it, which moves α by rounding level only.
    ridge = max(-float(np.linalg.eigvalsh(Kn)[0]), 0.0) + 1e-12
    constraints = np.concatenate([np.ones((num_tasks, 1)), np.eye(num_tasks)], axis=1)  # Σα = 1, α ≥ 0
    bounds = np.concatenate([[1.0], np.zeros(num_tasks)])
    try:
        alpha = quadprog.solve_qp(Kn + ridge * np.eye(num_tasks), np.zeros(num_tasks), constraints, bounds, meq=1)[0]
    except ValueError as error:
        raise SolverError(f"MGDA's min-norm QP failed (quadprog: {error}); Gram matrix {K.tolist()}") from None
    alpha = np.clip(alpha, 0.0, None)
    return alpha / alpha.sum()


def alpha_fair_weights(K: torch.Tensor, alpha: float, *, tol: float = 1e-9, max_iter: int = 100) -> torch.Tensor:
    """The ``w > 0`` with ``(K w)_i = w_i^(-1/alpha)``: FairGrad's α-fair weights; ``alpha = 1`` is Nash-MTL.

    With ``n_i = ‖g_i‖``, ``C = K / (n nᵀ)`` (the cosines) and ``w = β / n``
    the equation reads ``(C β)_i = c_i β_i^(-p)`` with ``p = 1/alpha`` and
    ``c_i = n_i^(p-1)``: the stationarity condition of the strictly convex
    ``½ βᵀCβ − Σ_i c_i h(β_i)``, ``h' = β^(-p)``. A damped Newton method
    (fraction-to-boundary step, Armijo backtracking, full steps once the
    Newton decrement is small), started from the exact solution for
    orthogonal gradients, meets every equation to ``tol`` relative error in a
    few ``T x T`` solves.

    The stopping test is the componentwise backward error ``|residual_i| /
    ((|C| β)_i + c_i β_i^(-p))``, which rounding cannot keep above ``tol``.

    A task with a zero gradient can never meet its equation: it gets weight 0
    and a warning. When 0 lies in the convex hull of the other gradients
    (Pareto stationarity) no solution exists: that, or no convergence within
    ``max_iter`` steps, raises :class:`SolverError`.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    Kd = _symmetric64(K)
    num_tasks = Kd.shape[0]
    norms = np.sqrt(np.clip(np.diagonal(Kd), 0.0, None))
    if float(norms.max()) <= 0.0:
        raise SolverError("every task gradient is zero: the α-fair (Nash) weights are undefined")
    active = norms > norms.max() * 1e-10
    if not active.all():
        warnings.warn(
            f"task(s) {np.flatnonzero(~active).tolist()} have a zero gradient: their α-fair (Nash) equation has no "
            "solution, so they get weight 0 and the others are balanced among themselves",
            RuntimeWarning,
            stacklevel=2,
        )
    n = norms[active]
    C = Kd[np.ix_(active, active)] / np.outer(n, n)
    hull = _min_norm(C)
    if float(hull @ C @ hull) <= 1e-12:
        raise SolverError(
            "no α-fair (Nash) weights exist: 0 lies in the convex hull of the task gradients (they are "
            "Pareto-stationary), so the weights would grow without bound"
        )
    p = 1.0 / alpha
    c = n ** (p - 1.0)
    c_scale = float(c.max())
    c = c / c_scale  # β scales as c^(1/(1+p)): restored below

    def objective(b: np.ndarray) -> float:
        h = np.log(b) if p == 1.0 else b ** (1.0 - p) / (1.0 - p)
        return float(0.5 * b @ C @ b - c @ h)

    beta = c ** (1.0 / (1.0 + p))  # the exact solution when the gradients are orthogonal
    for _ in range(max_iter):
        target = c * beta**-p
        residual = C @ beta - target
        error = float(np.max(np.abs(residual) / (np.abs(C) @ beta + target)))  # backward error: rounding-aware
        if error <= tol:
            break
        direction = -np.linalg.solve(C + np.diag(p * c * beta ** (-p - 1.0)), residual)
        shrinking = direction < 0
        t = min(1.0, 0.99 * float(np.min(-beta[shrinking] / direction[shrinking]))) if shrinking.any() else 1.0
        decrement = -float(residual @ direction)  # squared Newton decrement
        if decrement > 1e-3:  # far from the solution: backtrack; close to it, full steps converge quadratically
            f0 = objective(beta)
            while objective(beta + t * direction) > f0 - 1e-4 * t * decrement and t > 1e-10:
                t /= 2.0
        beta = beta + t * direction
    else:
        raise SolverError(
            f"α-fair Newton solver did not converge in {max_iter} steps (max relative residual {error:.2e} > {tol:.0e})"
        )
    weights = np.zeros(num_tasks)
    weights[active] = beta * c_scale ** (1.0 / (1.0 + p)) / n
    return _like(weights, K)
