"""GradVac (Wang et al., ICLR 2021): pull pairwise gradient cosines up to their running targets.

For each task i and the others j in a random order (per parameter group k):
``ρ = cos(g_i', g_j)``; if ``ρ < φ̂_kij``, ``g_i' += g_j ‖g_i'‖(φ̂√(1−ρ²) − ρ√(1−φ̂²)) /
(‖g_j‖√(1−φ̂²) + ε)``; then ``φ̂_kij ← (1−β)φ̂_kij + βρ``; ``d = Σ_i g_i'``.
With φ̂ = 0 this is PCGrad's projection. Our own code, on each group's Gram
matrix: torchjd's ``GradVac`` keeps φ̂ in a private buffer that its own
state check resets after ``load_state_dict``, so it cannot resume exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import attrs
import numpy as np
import torch

from mtlx import ConfigError, StepContext

from ..rng import Seeded
from ._gradient import GradientAggregation, grad_mode_field
from ._state import WithAggregatorState

__all__ = ["GradVac", "GradVacState", "aggregate", "parameter_groups"]


@attrs.define
class GradVacState:
    #: EMA targets φ̂ ``[groups, T, T]`` (float64), zeros at the start
    phi_hat: torch.Tensor | None = None


def aggregate(
    G: torch.Tensor,
    *,
    state: GradVacState,
    generator: torch.Generator,
    beta: float = 0.5,
    groups: Sequence[tuple[int, int]] | None = None,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GradVac on ``[T, N]`` gradients (sum scale); ``groups`` are ``(start, stop)`` column ranges.

    Updates ``state.phi_hat`` in place. A correction towards a zero ``g_j``
    is skipped (it would add nothing to d). Returns d and the weights
    ``d = Σ w_t g_t`` (averaged over groups by size when there are several).
    """
    num_tasks, size = G.shape
    groups = list(groups) if groups is not None else [(0, size)]
    if state.phi_hat is None:
        state.phi_hat = torch.zeros(len(groups), num_tasks, num_tasks, dtype=torch.float64)
    if tuple(state.phi_hat.shape) != (len(groups), num_tasks, num_tasks):
        raise ValueError(f"GradVac state has shape {tuple(state.phi_hat.shape)}, "
                         f"expected {(len(groups), num_tasks, num_tasks)} for these gradients")
    phi_hat = state.phi_hat.numpy()
    orders = [torch.randperm(num_tasks - 1, generator=generator).tolist() for _ in range(num_tasks)]
    direction = torch.empty(size, dtype=G.dtype, device=G.device)
    mean_weights = np.zeros(num_tasks)
    for k, (start, stop) in enumerate(groups):
        block = G[:, start:stop]
        K = (block @ block.T).detach().to("cpu", torch.float64).numpy()
        coef = np.eye(num_tasks)  # g_i' = Σ_m coef[i, m] g_m
        for i in range(num_tasks):
            others = [j for j in range(num_tasks) if j != i]
            for j in (others[o] for o in orders[i]):
                dots = coef[i] @ K
                norm_i = float(np.sqrt(max(dots @ coef[i], 0.0)))
                norm_j = float(np.sqrt(max(K[j, j], 0.0)))
                rho = dots[j] / (norm_i * norm_j + eps)
                target = phi_hat[k, i, j]
                if norm_j > 0.0 and rho < target:
                    root_rho, root_target = np.sqrt(max(1 - rho**2, 0.0)), np.sqrt(max(1 - target**2, 0.0))
                    coef[i, j] += norm_i * (target * root_rho - rho * root_target) / (norm_j * root_target + eps)
                phi_hat[k, i, j] = (1 - beta) * target + beta * rho
        weights = coef.sum(axis=0)
        direction[start:stop] = torch.from_numpy(weights).to(G) @ block
        mean_weights += weights * (stop - start) / size
    return direction, torch.from_numpy(mean_weights).to(G)


def parameter_groups(
    params: Sequence[torch.nn.Parameter], owners: dict[int, str], group_type: int
) -> list[tuple[int, int]]:
    """Column ranges of LibMTL's groups: 0 whole model, 1 per module owning the parameters, 2 per tensor."""
    keys: list[object]
    if group_type == 0:
        keys = [0] * len(params)
    elif group_type == 2:
        keys = list(range(len(params)))
    else:
        keys = [owners[id(p)] for p in params]
    groups, start = [], 0
    for _, run in itertools.groupby(zip(keys, params, strict=True), key=lambda kp: kp[0]):
        stop = start + sum(p.numel() for _, p in run)
        groups.append((start, stop))
        start = stop
    return groups


class GradVac(WithAggregatorState, Seeded, GradientAggregation):
    """GradVac (Wang et al., ICLR 2021): gradient vaccine with EMA cosine targets (sum scale)."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            beta: EMA rate of the cosine targets (LibMTL ``GradVac_beta``)
            group_type: 0 whole model, 1 per module, 2 per parameter tensor (LibMTL ``GradVac_group_type``)
            seed: seed of the task-order permutations (default: drawn from the run's seed)
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        beta: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
        group_type: int = attrs.field(default=0, validator=attrs.validators.in_((0, 1, 2)))
        seed: int | None = None
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        if config.grad_mode == "rep" and config.group_type != 0:
            raise ConfigError("gradvac with grad_mode=rep has no parameter groups: use group_type=0")
        self._init_generator(config.seed)
        self.state = GradVacState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        groups = None
        if self.grad_mode == "shared" and self.config.group_type != 0:
            owners = {id(p): name for name, m in step.model.named_modules() for p in m.parameters(recurse=False)}
            groups = parameter_groups(step.shared_parameters(), owners, self.config.group_type)
        return aggregate(grads, state=self.state, generator=self.generator, beta=self.config.beta, groups=groups)
