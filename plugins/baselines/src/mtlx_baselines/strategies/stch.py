"""STCH (Lin et al., ICML 2024): smooth Tchebycheff scalarisation of the log losses against a nadir point.

Epochs before ``warmup_epoch``: loss ``Σ log(L_t + 1e-20)``. During
``warmup_epoch`` the same, while the nadir z accumulates the mean loss of
that epoch. Afterwards, with ``ℓ_t = log(L_t / z_t + 1e-20)``:
``T μ logsumexp(ℓ / μ)``. The weights reported are the effective weights on
``∇L_t`` (LibMTL and the official code return ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import ConfigError, LossWeighting, StepContext

from ._positive import require_positive
from ._state import WithAggregatorState

__all__ = ["STCH", "STCHState"]

EPS = 1e-20


@attrs.define
class STCHState:
    loss_sum: torch.Tensor | None = None  # Σ L over the warm-up epoch's steps
    count: int = 0
    nadir: torch.Tensor | None = None  # z, fixed after the warm-up epoch


class STCH(WithAggregatorState, LossWeighting):
    """STCH (Lin et al., ICML 2024): smooth Tchebycheff scalarisation after a log-loss warm-up."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            mu: smoothing μ (LibMTL ``STCH_mu``)
            warmup_epoch: epochs of log-loss training; the nadir is the mean loss of the last one (LibMTL
                ``warmup_epoch``)
        """

        mu: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
        warmup_epoch: int = attrs.field(default=4, validator=attrs.validators.ge(0))

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = STCHState()

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        require_positive(losses, self.tasks, step, "stch", allow_zero=True)
        epoch, warmup = step.epoch, self.config.warmup_epoch
        if epoch <= warmup:
            if epoch == warmup:
                detached = losses.detach().double().cpu()
                self.state.loss_sum = detached if self.state.loss_sum is None else self.state.loss_sum + detached
                self.state.count += 1
            return torch.log(losses + EPS).sum(), (1.0 / (losses + EPS)).detach()
        nadir = self._nadir(step).to(losses)
        mu, num_tasks = self.config.mu, losses.shape[0]
        scaled = torch.log(losses / nadir + EPS) / mu
        total = num_tasks * mu * torch.logsumexp(scaled, 0)
        weights = num_tasks * torch.softmax(scaled.detach(), 0) / (losses.detach() + EPS * nadir)
        return total, weights

    def _nadir(self, step: StepContext) -> torch.Tensor:
        if self.state.nadir is None:
            if self.state.count == 0 or self.state.loss_sum is None:
                raise ConfigError(
                    f"stch reached epoch {step.epoch} without a nadir point: no step of the warm-up epoch "
                    f"{self.config.warmup_epoch} was seen (was the run resumed without the strategy state?)"
                )
            self.state.nadir = self.state.loss_sum / self.state.count
        return self.state.nadir
