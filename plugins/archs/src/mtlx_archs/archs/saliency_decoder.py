"""Saliency-decoder HPS: per-task sigmoid masks on the shared representation.

A variant offered by mtlx, NOT the Rep-MTL paper's method: one description
of Rep-MTL that the project started from speaks of a "Task Saliency
Decoder" producing per-task attention masks that filter the shared
features; the paper (arXiv 2507.21049) has no such module, its task
saliency is the gradient of each loss w.r.t. Z. This architecture makes
the idea available: a light decoder per task (a ``kernel_size`` conv to
C/reduction, BN, ReLU, 1x1 conv back to C, BN, sigmoid; linear layers for
vector Z) turns Z into a mask of Z's shape, and task t's head sees
``Z * mask_t``. The defaults (1x1, C/8) keep it light on a 2048-channel
dilated ResNet-50 Z: about 1.8 GFLOPs per task at NYUv2 size, against
42 for the backbone; ``kernel_size=3`` adds spatial context at 9x the cost. Z before masking is the shared
representation, so Rep-MTL and the representation-level baselines work on
it; the masks and heads are task-specific parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn

from .hps import HardParameterSharing
from .modules import sigmoid_gate

__all__ = ["SaliencyDecoder"]


class SaliencyDecoder(HardParameterSharing):
    """HPS whose head t reads ``Z * sigmoid(decoder_t(Z))`` (a variant, not the paper's method)."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o arch.KEY=VALUE``.

        Attributes:
            reduction: each mask decoder narrows C to C / reduction channels
            kernel_size: kernel of its first conv: 1, or 3 for spatial context (9x the cost)
        """

        reduction: int = attrs.field(default=8, validator=attrs.validators.ge(1))
        kernel_size: int = attrs.field(default=1, validator=attrs.validators.in_((1, 3)))

    has_shared_representation = True

    def __init__(self, config: Config, **parts: Any):
        # The masks come after the heads, so a seed gives the weights it gave before the shared base.
        super().__init__(config, **parts)
        out_shape = self.backbone.out_shape
        spatial, c = len(out_shape) == 3, out_shape[0]
        self.saliency = nn.ModuleDict(
            {
                t: sigmoid_gate(c, max(c // config.reduction, 1), c, spatial=spatial, kernel=config.kernel_size)
                for t in self.task_names
            }
        )

    def decode(self, z: torch.Tensor, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](z * self.saliency[t](z)) for t in (tasks or self.task_names)}

    def masks(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-task masks for Z (for inspection and plots)."""
        return {t: self.saliency[t](z) for t in self.task_names}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.saliency[task].parameters(), *self.heads[task].parameters()]
