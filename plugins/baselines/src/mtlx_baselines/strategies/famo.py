"""FAMO (Liu, Feng, Stone, Liu, NeurIPS 2023): fast adaptive multitask optimisation, one backward per step.

``z = softmax(ξ)``, ``D_t = L_t + 1e-8``, loss ``Σ_t z_t log D_t / c`` with
``c = sg(Σ_t z_t / D_t)`` (effective weights ``(z_t/D_t)/c``, summing to 1).
After the optimiser step, ``after_step`` re-evaluates the losses on the same
batch: ``δ = log D(before) − log D(after)``, ``ξ.grad = J_softmax(ξ)ᵀ δ``,
then one Adam step on ξ (lr ``w_lr``, weight decay ``gamma``). ξ and its Adam
state live on the CPU in ``state_dict``; they are not model parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from mtlx import LossWeighting, StepContext

from ._positive import require_positive
from ._state import clone_state

__all__ = ["FAMO"]

EPS = 1e-8


class FAMO(LossWeighting):
    """FAMO (Liu et al., NeurIPS 2023): balance the tasks' log-loss decrease rates with O(1) cost."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            w_lr: Adam learning rate of the logits ξ (LibMTL ``FAMO_w_lr``)
            gamma: Adam weight decay of ξ (LibMTL ``FAMO_w_gamma``; the paper's runs: 1e-3, Cityscapes 1e-2)
        """

        w_lr: float = attrs.field(default=0.025, validator=attrs.validators.gt(0))
        gamma: float = attrs.field(default=1e-3, validator=attrs.validators.ge(0))

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.logits = torch.zeros(len(self.tasks), requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=config.w_lr, weight_decay=config.gamma)

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        require_positive(losses, self.tasks, step, "famo", allow_zero=True)
        z = torch.softmax(self.logits.detach(), 0).to(losses)
        shifted = losses + EPS
        c = (z / shifted).sum().detach()
        return (z * torch.log(shifted)).sum() / c, (z / shifted.detach()) / c

    def after_step(self, step: StepContext) -> None:
        if step.recompute_losses is None:
            raise step.missing("recompute_losses", "famo (re-evaluates the losses after the optimiser step)")
        after = step.recompute_losses()
        before = step.loss_vector().detach()
        now = torch.stack([after[t].detach() for t in self.tasks]).to(before)
        delta = (torch.log(before + EPS) - torch.log(now + EPS)).to(self.logits)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(torch.softmax(self.logits, 0), self.logits, grad_outputs=delta)
        self.optimizer.zero_grad()
        self.logits.grad = grad
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(logits=self.logits.detach().clone(), optimizer=clone_state(self.optimizer.state_dict()))
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.optimizer.load_state_dict(clone_state(state["optimizer"]))
