"""Hard parameter sharing (Caruana 1997): one shared backbone, one head per task.

The backbone output is the single shared representation Z, so every
representation-level strategy (Rep-MTL, MGDA-UB, GradDrop) applies. For
multi-input data the engine calls ``encode`` on each task's input and
``decode(z, [task])``: the same encoder serves every input stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import nn

from mtlx.interfaces import BackboneFactory

from .base import Architecture

__all__ = ["HardParameterSharing"]


class HardParameterSharing(Architecture):
    """Hard parameter sharing: Z = backbone(x), prediction_t = head_t(Z)."""

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    has_shared_representation = True

    def build_shared(
        self, config: Config, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.backbone = make_backbone()
        return self.backbone.out_shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def decode(self, z: torch.Tensor, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](z) for t in (tasks or self.task_names)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())
