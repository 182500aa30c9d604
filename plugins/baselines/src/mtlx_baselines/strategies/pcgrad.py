"""PCGrad (Yu et al., NeurIPS 2020): project each gradient off the ones it conflicts with.

Backend: torchjd's ``PCGradWeighting`` (same algorithm on the Gram matrix:
for every task, the others in a random order, always against the original
g_j), drawing its permutations from our generator so runs resume exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torchjd.aggregation import PCGradWeighting

from mtlx import StepContext

from ..linalg import gram
from ..rng import Seeded, drawing_from
from ._gradient import GradientAggregation, grad_mode_field

__all__ = ["PCGrad", "aggregate"]

_WEIGHTING = PCGradWeighting()


def aggregate(G: torch.Tensor, *, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """PCGrad on ``[T, N]`` gradients: ``d = Σ_t g_t'`` (sum scale) and weights with ``d = Σ w_t g_t``."""
    with drawing_from(generator):
        weights = _WEIGHTING(gram(G))
    return weights @ G, weights


class PCGrad(Seeded, GradientAggregation):
    """PCGrad (Yu et al., NeurIPS 2020): gradient surgery against conflicting tasks (sum scale)."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            seed: seed of the task-order permutations (default: drawn from the run's seed)
            grad_mode: aggregate the per-task gradients of the shared parameters (``shared``) or of Z (``rep``)
        """

        seed: int | None = None
        grad_mode: str = grad_mode_field()

    aggregate = staticmethod(aggregate)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self._init_generator(config.seed)

    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        return aggregate(grads, generator=self.generator)
