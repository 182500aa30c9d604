"""LDC-MTL (Xiao, Dong, Zou & Ji, arXiv 2502.08585, 2025): loss discrepancy control, one backward per step.

Losses are pre-normalised by their first-step values, ``ℓ̃_t = L_t / L_t(0)``; a router gives weights
``σ = softmax(W)``; the bilevel problem (the model minimises ``Σ σ_t ℓ̃_t``, the router the discrepancy of
neighbouring weighted losses) is solved by its penalty form, one backward of
``Σ_t σ_t ℓ̃_t + λ Σ_{t<T} |σ_t ℓ̃_t − σ_{t+1} ℓ̃_{t+1}|`` into both the model and W (the released code's
``weighted_loss + lamb * loss_diff.sum()``). W is an extra parameter (its own optimiser group at the run's
learning rate, no weight decay) started at 0, a router that takes no input so that it fits every model;
the released code's routers differ per experiment (a linear layer on pooled task features, softmax,
clamped to [0.2, 0.8] for NYUv2 and Cityscapes; a free sigmoid vector for CelebA and QM9) and so do its
normalisations (``L/L(0)`` times ``min L(0)`` on NYUv2, ``log(L/L(0))`` on QM9, none on CelebA and
Cityscapes): baselines README, *2025 methods*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from mtlx import LossWeighting, StepContext

from ._positive import require_positive

__all__ = ["LDCMTL", "effective_weights"]


def effective_weights(sigma: torch.Tensor, normalised: torch.Tensor, initial: torch.Tensor,
                      lamb: float) -> torch.Tensor:
    """``∂/∂L_t`` of the objective: ``σ_t (1 + λ(s_t − s_{t−1})) / L_t(0)`` with ``s_t = sign(σ_tℓ̃_t − σ_{t+1}ℓ̃_{t+1})``
    (0 at a tie, as autograd's ``abs``; ``s_0 = s_T = 0`` at the ends)."""
    weighted = sigma * normalised
    signs = torch.sign(weighted[:-1] - weighted[1:])
    return sigma * (1 + lamb * (F.pad(signs, (0, 1)) - F.pad(signs, (1, 0)))) / initial


class LDCMTL(LossWeighting):
    """LDC-MTL (Xiao et al., 2025): router weights on first-step-normalised losses plus a λ-penalised discrepancy."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            lamb: λ, the weight of the loss-discrepancy penalty (the released code: 0.05 NYUv2 and QM9,
                0.1 Cityscapes, 0.01 CelebA)
        """

        lamb: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.router = nn.Parameter(torch.zeros(len(self.tasks)))
        self.initial_losses: torch.Tensor | None = None  # L(0), [T] float64 on the CPU

    def extra_parameters(self) -> Iterable[nn.Parameter]:
        return (self.router,)

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        require_positive(losses, self.tasks, step, "ldc-mtl", allow_zero=self.initial_losses is not None)
        if self.initial_losses is None:  # every process normalises by the same (global batch's) L(0)
            self.initial_losses = step.average_across_processes(losses.detach().double()).cpu()
        initial = self.initial_losses.to(losses)
        normalised = losses / initial
        sigma = torch.softmax(self.router.to(losses), 0)
        weighted = sigma * normalised
        total = weighted.sum() + self.config.lamb * (weighted[:-1] - weighted[1:]).abs().sum()
        return total, effective_weights(sigma.detach(), normalised.detach(), initial, self.config.lamb)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["initial_losses"] = None if self.initial_losses is None else self.initial_losses.clone()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state["initial_losses"]
        self.initial_losses = None if saved is None else saved.clone()
