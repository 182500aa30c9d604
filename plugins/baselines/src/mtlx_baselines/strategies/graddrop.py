"""GradDrop (Chen et al., NeurIPS 2020): keep, per feature, only the gradients of one random sign.

On the representation Z only (as in the paper and LibMTL). Per feature
position: ``S_t = Σ_batch sign(z) ⊙ ∂L_t/∂z``, purity ``P = ½(1 + ΣS_t /
(Σ|S_t| + 1e-7))``, ``U ~ Unif(0,1)``, ``M_t = 1[P>U]·1[S_t>0] + 1[P<U]·1[S_t<0]``
and ``∂/∂z ← Σ_t (ℓ + (1−ℓ)M_t) ⊙ ∂L_t/∂z`` with the mask broadcast over the
batch. Our own code: torchjd's ``GradDrop`` takes the signs from the matrix
it combines and draws U from the global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from mtlx import MTOStrategy, Need, StepContext, StepResult

from ..rng import Seeded
from ._gradient import representation

__all__ = ["GradDrop", "aggregate", "masks"]


def masks(signal: torch.Tensor, *, generator: torch.Generator, leak: float = 0.0) -> torch.Tensor:
    """``[T, F]`` keep factors ``ℓ + (1−ℓ)M_t`` from the ``[T, F]`` sign signal."""
    purity = 0.5 * (1.0 + signal.sum(0) / (signal.abs().sum(0) + 1e-7))
    draw = torch.rand(purity.shape, generator=generator, dtype=purity.dtype).to(purity.device)
    keep = ((purity > draw) & (signal > 0)) | ((purity < draw) & (signal < 0))
    return leak + (1.0 - leak) * keep.to(signal.dtype)


def aggregate(G: torch.Tensor, *, generator: torch.Generator, leak: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """GradDrop with each column of ``[T, N]`` its own feature; returns d and the fraction kept per task."""
    factors = masks(G, generator=generator, leak=leak)
    return (factors * G).sum(0), factors.mean(1)


class GradDrop(Seeded, MTOStrategy):
    """GradDrop (Chen et al., NeurIPS 2020): sign-consistent gradient dropout on the shared representation."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            leak: ℓ: how much of every gradient always passes (LibMTL ``leak``)
            seed: seed of the random thresholds U (default: drawn from the run's seed)
        """

        leak: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
        seed: int | None = None

    needs = Need.REPRESENTATION
    aggregate = staticmethod(aggregate)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self._init_generator(config.seed)

    def backward(self, step: StepContext) -> StepResult:
        z = representation(step, "GradDrop")
        grads = step.rep_grads()  # [T, B, *feature]
        signal = (torch.sign(z.detach()).unsqueeze(0) * grads).sum(1).flatten(1).float()
        factors = masks(signal, generator=self.generator, leak=self.config.leak)
        shape = (grads.shape[0], 1, *grads.shape[2:])
        step.backward_representation((factors.view(shape).to(grads.dtype) * grads).sum(0))
        step.backward_heads()
        kept = factors.mean(1).tolist()
        return StepResult(weights=None, diagnostics={f"kept/{t}": k for t, k in zip(self.tasks, kept, strict=True)})
