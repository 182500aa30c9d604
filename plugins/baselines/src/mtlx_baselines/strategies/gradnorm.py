"""GradNorm (Chen et al., ICML 2018): learn loss weights that equalise the tasks' gradient norms.

LibMTL's form: ``w = T softmax(ω)`` (ω an extra parameter, init 1);
``G_t = w_t ‖g_t‖``, ``Ḡ = mean G``, ``r_t = L̃_t / mean L̃`` with
``L̃_t = L_t / L_t(0)``; ω gets ``∇ Σ_t |G_t − sg(Ḡ r_t^α)|`` and the shared
parameters ``Σ sg(w_t) g_t``; heads get ``∇L_t``. ``L(0)`` is the mean loss of
epoch 0 (LibMTL; training is EW until it is known) or, with
``initial_loss=first-step``, the first step's losses (the paper).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs
import torch
from torch import nn

from mtlx import MTOStrategy, StepContext, StepResult

from ._gradient import named
from ._state import WithAggregatorState

__all__ = ["GradNorm", "GradNormState"]


@attrs.define
class GradNormState:
    initial_losses: torch.Tensor | None = None  # L(0), [T] float64


class GradNorm(WithAggregatorState, MTOStrategy):
    """GradNorm (Chen et al., ICML 2018): weights trained to balance gradient norms (sum scale)."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            alpha: restoring-force exponent α (LibMTL ``alpha``)
            initial_loss: where L(0) comes from: epoch-0 mean (LibMTL) or the first step (paper)
        """

        alpha: float = attrs.field(default=1.5, validator=attrs.validators.ge(0))
        initial_loss: str = attrs.field(default="epoch0", validator=attrs.validators.in_(("epoch0", "first-step")))

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.logits = nn.Parameter(torch.ones(len(self.tasks)))
        self.state = GradNormState()

    def extra_parameters(self) -> Iterable[nn.Parameter]:
        return (self.logits,)

    def on_epoch_end(self, epoch: int, mean_losses: Mapping[str, float]) -> None:
        if epoch == 0 and self.config.initial_loss == "epoch0":
            self.state.initial_losses = torch.tensor([float(mean_losses[t]) for t in self.tasks], dtype=torch.float64)

    def backward(self, step: StepContext) -> StepResult:
        losses = step.loss_vector()
        if self.state.initial_losses is None and self.config.initial_loss == "first-step":
            self.state.initial_losses = losses.detach().double().cpu()
        if self.state.initial_losses is None:  # LibMTL: EW during epoch 0
            step.backward(losses.sum())
            return StepResult(weights=named(self.tasks, torch.ones_like(losses)))
        grads = step.shared_grads()
        weights = len(self.tasks) * torch.softmax(self.logits.to(losses.device), 0)
        norms = weights * grads.norm(dim=1).to(weights)
        relative = losses.detach().double().cpu() / self.state.initial_losses
        ratio = (relative / relative.mean()).to(norms)
        target = (norms.mean() * ratio.pow(self.config.alpha)).detach()
        balance_loss = (norms - target).abs().sum()
        step.backward(balance_loss, inputs=[self.logits])
        step.set_shared_grad(weights.detach().to(grads) @ grads)
        step.backward_heads()
        diagnostics = {"gradnorm_loss": float(balance_loss.detach())}
        return StepResult(weights=named(self.tasks, weights), diagnostics=diagnostics)
