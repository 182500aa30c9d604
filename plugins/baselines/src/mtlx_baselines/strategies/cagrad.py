"""CAGrad (Liu et al., NeurIPS 2021): the best worst-task improvement within a ball around the mean.

``w = argmin_{w∈Δ} g_wᵀg_0 + c‖g_0‖‖g_w‖`` (g_0 the mean gradient), then
``d = g_0 + c‖g_0‖/‖g_w‖ · g_w``, rescaled as LibMTL does (``rescale`` 0: d,
1: d/(1+c²), 2: d/(1+c)). Our own code, not torchjd's: its cvxpy/CLARABEL
solve is ~10x slower than SLSQP on the T x T problem, it has no rescale, and
it returns d = 0 where the formula gives g_0 (see the plugin README).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
from scipy.optimize import minimize

from mtlx import StepContext

from ..errors import SolverError
from ..linalg import gram
from ._gradient import GradientAggregation, grad_mode_field

__all__ = ["RESCALES", "CAGrad", "aggregate"]

RESCALES = (0, 1, 2)


def _ball_weights(K: np.ndarray, c: float) -> np.ndarray:
    """SLSQP on ``K / tr K`` (the argmin is scale-invariant) from the uniform start, status checked."""
    num_tasks = K.shape[0]
    start = np.full(num_tasks, 1.0 / num_tasks)
    b = K @ start  # g_wᵀg_0 = wᵀ K (1/T)
    radius = c * float(np.sqrt(start @ K @ start))

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        norm = float(np.sqrt(w @ K @ w + 1e-8))  # LibMTL's √(·+1e-8)
        return float(w @ b) + radius * norm, b + radius * (K @ w) / norm

    result = minimize(
        objective, start, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * num_tasks,
        constraints={"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)},
        options={"ftol": 1e-12, "maxiter": 500},
    )
    if not result.success:
        raise SolverError(f"CAGrad's SLSQP did not converge: {result.message} (Gram {K.tolist()})")
    return np.clip(result.x, 0.0, None)


def aggregate(G: torch.Tensor, *, c: float = 0.5, rescale: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """CAGrad on ``[T, N]`` gradients (mean scale); weights satisfy ``d = Σ w_t g_t``."""
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of {RESCALES}, got {rescale!r}")
    num_tasks = G.shape[0]
    K = gram(G).detach().to("cpu", torch.float64).numpy()
    K = (K + K.T) / 2
    mean = np.full(num_tasks, 1.0 / num_tasks)
    trace = float(np.trace(K))
    weights = mean.copy()
    if c > 0 and trace > 0:
        w = _ball_weights(K / trace, c)
        g0_norm = float(np.sqrt(max(mean @ K @ mean, 0.0)))
        gw_norm = float(np.sqrt(max(w @ K @ w, 0.0)))
        weights = mean + c * g0_norm / (gw_norm + 1e-8) * w
    weights = weights / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[rescale]
    weights_t = torch.from_numpy(weights).to(G)
    return weights_t @ G, weights_t


class CAGrad(GradientAggregation):
    """CAGrad (Liu et al., NeurIPS 2021): conflict-averse direction near the mean gradient."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            c: radius of the ball around g_0 (LibMTL ``calpha``; the paper uses 0.4 on NYUv2/Cityscapes)
            rescale: 0: d, 1: d/(1+c²) (LibMTL default), 2: d/(1+c)
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        c: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
        rescale: int = attrs.field(default=1, validator=attrs.validators.in_(RESCALES))
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads, c=self.config.c, rescale=self.config.rescale)
