"""MetaBalance (He et al., WWW 2022, arXiv 2203.06801): auxiliary gradients scaled towards the target's magnitude.

For every part k of the shared parameters (one parameter tensor, as the released code's per-``p`` loop)
and task t: ``m_tk ← β m_tk + (1−β)‖g_tk‖`` (m starts at 0), then each auxiliary gradient becomes
``g_tk ← r (m_Tk / m_tk) g_tk + (1−r) g_tk`` with T the target task and r the relax factor, and
``d = Σ_t g_tk`` (sum scale; the target's gradient is never changed). ``adapt`` is the paper's choice of
which auxiliary gradients to adapt: all of them (the released code, default), only those whose moving
average exceeds the target's (``reduce``) or only those below it (``enlarge``).

The paper has one target task and auxiliary tasks that only serve it; mtlx's tasks are peers. ``target``
names the task the others are balanced to; by default the dataset's first task, which is what the
released optimiser does with the losses in task order (its ``loss_array[0]``) and how a symmetric
benchmark table runs it unless told otherwise. Our own code on the per-task gradients of the core.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import ConfigError, StepContext
from mtlx.errors import did_you_mean

from ._gradient import GradientAggregation
from ._state import WithAggregatorState

__all__ = ["ADAPT", "MetaBalance", "MetaBalanceState", "aggregate"]

#: which auxiliary gradients are adapted: every one, those larger than the target's, those smaller
ADAPT = ("all", "reduce", "enlarge")


@attrs.define
class MetaBalanceState:
    #: moving averages of the gradient norms ``[T, parts]`` (float64), zeros at the start
    norms: torch.Tensor | None = None


def aggregate(
    G: torch.Tensor,
    *,
    state: MetaBalanceState,
    target: int = 0,
    parts: Sequence[int] | None = None,
    relax_factor: float = 0.7,
    beta: float = 0.9,
    adapt: str = "all",
) -> tuple[torch.Tensor, torch.Tensor]:
    """MetaBalance on ``[T, N]`` gradients (sum scale); ``parts`` are the sizes of the column blocks with one norm each.

    Updates ``state.norms`` in place. A task whose moving average is 0 has had only zero gradients in that
    part, so its (zero) gradient keeps scale 1 there instead of 0/0. Returns d and the weights
    ``d = Σ w_t g_t`` (the parts' scales averaged by size when there are several).
    """
    if adapt not in ADAPT:
        raise ValueError(f"adapt must be one of {ADAPT}, got {adapt!r}")
    num_tasks, size = G.shape
    sizes = list(parts) if parts is not None else [size]
    blocks = G.split(sizes, dim=1)
    norms = torch.stack([block.norm(dim=1) for block in blocks], dim=1).to("cpu", torch.float64)
    if state.norms is None:
        state.norms = torch.zeros(num_tasks, len(sizes), dtype=torch.float64)
    if tuple(state.norms.shape) != tuple(norms.shape):
        raise ValueError(f"MetaBalance state has shape {tuple(state.norms.shape)}, "
                         f"expected {tuple(norms.shape)} for these gradients")
    state.norms.mul_(beta).add_(norms, alpha=1 - beta)
    m = state.norms
    m_target = m[target].expand_as(m)
    ratio = torch.where(m > 0, m_target / torch.where(m > 0, m, 1.0), 1.0)
    adapted = {"all": torch.ones_like(m, dtype=torch.bool), "reduce": m > m_target, "enlarge": m < m_target}[adapt]
    scale = torch.where(adapted, relax_factor * ratio + (1 - relax_factor), 1.0)
    scale[target] = 1.0
    direction = torch.cat([scale[:, k].to(G) @ block for k, block in enumerate(blocks)])
    weights = scale @ torch.tensor(sizes, dtype=torch.float64) / size
    return direction, weights.to(G)


class MetaBalance(WithAggregatorState, GradientAggregation):
    """MetaBalance (He et al., WWW 2022): the other tasks' gradients pulled towards the target's magnitude."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            target: the task the others are balanced to (default: the dataset's first task, as the original
                optimiser treats the first loss it is given)
            relax_factor: r, how far each auxiliary magnitude moves to the target's (0: EW, 1: equal magnitudes)
            beta: moving-average rate of the gradient norms (the released code: 0.9, "set empirically")
            adapt: which auxiliary gradients are adapted: ``all`` (the released code), ``reduce`` (only those
                larger than the target's) or ``enlarge`` (only those smaller)
        """

        target: str | None = None
        relax_factor: float = attrs.field(default=0.7, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
        beta: float = attrs.field(default=0.9, validator=[attrs.validators.ge(0), attrs.validators.lt(1)])
        adapt: str = attrs.field(default="all", validator=attrs.validators.in_(ADAPT))

    aggregate = staticmethod(aggregate)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        target = self.tasks[0] if config.target is None else config.target
        if target not in self.tasks:
            hint = did_you_mean(target, self.tasks)
            raise ConfigError(f"strategy 'metabalance': target {target!r} is not a task{hint} "
                              f"(tasks: {', '.join(self.tasks)})")
        self.target = self.tasks.index(target)
        self.state = MetaBalanceState()

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [p.numel() for p in step.shared_parameters()]
        return aggregate(grads, state=self.state, target=self.target, parts=parts,
                         relax_factor=self.config.relax_factor, beta=self.config.beta, adapt=self.config.adapt)
