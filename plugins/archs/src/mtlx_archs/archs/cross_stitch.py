"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, CVPR 2016).

One backbone copy per task; after every stage a cross-stitch unit mixes the
tasks' features linearly: ``x_t <- sum_s alpha[t, s, c] * x_s`` with one
learned weight per task pair and channel, initialised to ``self_weight`` on
the diagonal and the rest spread evenly (the paper's (0.9, 0.1) for two
tasks). Every backbone copy influences every task through the units, so all
backbones and units count as shared parameters; there is no single shared
representation.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn

from mtlx.interfaces import BackboneFactory

from .base import Architecture
from .modules import require_stages

__all__ = ["CrossStitch"]


class CrossStitch(Architecture):
    """Cross-stitch: one backbone per task, linear feature mixing after every stage, one head per task."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o arch.KEY=VALUE``.

        Attributes:
            self_weight: initial weight of a task's own features in each cross-stitch unit (per channel); each
                other task starts at ``(1 - self_weight) / (T - 1)``
        """

        self_weight: float = attrs.field(default=0.9, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])

    has_shared_representation = False

    def build_shared(
        self, config: Config, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.backbones = nn.ModuleDict({t: make_backbone() for t in self.task_names})
        first = next(iter(self.backbones.values()))
        for backbone in self.backbones.values():
            require_stages(backbone, "cross-stitch")
        n = len(self.task_names)
        off = (1.0 - config.self_weight) / (n - 1) if n > 1 else 0.0
        init = torch.full((n, n), off).fill_diagonal_(config.self_weight if n > 1 else 1.0)
        self.alphas = nn.ParameterList(
            nn.Parameter(init[:, :, None].repeat(1, 1, c).clone()) for c in first.stage_channels
        )
        return first.out_shape

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stages = [self.backbones[t].stages() for t in self.task_names]
        feats = [x] * len(self.task_names)
        for j, alpha in enumerate(self.alphas):
            stacked = torch.stack([task_stages[j](f) for task_stages, f in zip(stages, feats, strict=True)])
            feats = list(torch.einsum("tsc,sbc...->tbc...", alpha, stacked).unbind(0))
        return {t: self.heads[t](f) for t, f in zip(self.task_names, feats, strict=True)}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.backbones.parameters(), *self.alphas.parameters()]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())
