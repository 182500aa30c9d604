"""SDMGrad (Xiao, Ban and Ji, NeurIPS 2023, "Direction-oriented multi-objective learning").

Per step, with the per-task gradients ``Z`` (ζ), ``X₁``, ``X₂`` (ξ) of three independent batches (LibMTL's
``SDMGrad``)::

    K = X₁ X₂ᵀ / (s² + 1e-8),  s = mean_t sqrt(max(K_tt, 0)),   b = λ · mean_j K_tj
    n times (SGD with momentum μ, fresh each step, learning rate η):  w ← Π_Δ(w − η m),  m ← μ m + (K w + b)
    d = (Zᵀ w + λ mean_t Z_t) / (1 + λ)

w (the weights, w₀ = 1/T) is the state.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import StepContext

from ._double_sampling import DoubleSampling, project_simplex

__all__ = ["SDMGrad", "SDMGradState", "update"]


@attrs.define
class SDMGradState:
    weights: torch.Tensor | None = None  # w, [T]


def update(Z: torch.Tensor, X1: torch.Tensor, X2: torch.Tensor, *, state: SDMGradState, lamda: float = 0.3,
           niter: int = 20, lr: float = 5.0, momentum: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """One SDMGrad step on three batches' ``[T, N]`` gradients; updates ``state``; returns ``d`` and w."""
    if state.weights is None:
        state.weights = torch.full((Z.shape[0],), 1.0 / Z.shape[0], dtype=Z.dtype, device=Z.device)
    K = X1 @ X2.T
    scale = K.diagonal().clamp(min=0).sqrt().mean()
    K = K / (scale**2 + 1e-8)
    pull = lamda * K.mean(1)
    w, buffer = state.weights, None
    for _ in range(niter):
        grad = K @ w + pull
        buffer = grad if buffer is None else momentum * buffer + grad
        w = project_simplex(w - lr * buffer)
    state.weights = w
    return (w @ Z + lamda * Z.mean(0)) / (1 + lamda), w


class SDMGrad(DoubleSampling):
    """SDMGrad (Xiao et al., NeurIPS 2023): a stochastic MGDA regularised toward the average gradient."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            lamda: regularisation λ toward the mean gradient (LibMTL ``SDMGrad_lamda``)
            niter: projected momentum-SGD iterations on w per step (LibMTL ``SDMGrad_niter``)
            lr: their learning rate (LibMTL fixes 5)
            momentum: their momentum (LibMTL fixes 0.5; the buffer starts afresh every step)
        """

        lamda: float = attrs.field(default=0.3, validator=attrs.validators.ge(0))
        niter: int = attrs.field(default=20, validator=attrs.validators.ge(1))
        lr: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
        momentum: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0), attrs.validators.lt(1)])

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = SDMGradState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return update(grads, step.shared_grads(1), step.shared_grads(2), state=self.state, lamda=c.lamda,
                      niter=c.niter, lr=c.lr, momentum=c.momentum)
