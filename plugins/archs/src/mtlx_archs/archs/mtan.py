"""Multi-Task Attention Network, MTAN (Liu, Johns & Davison, CVPR 2019).

One shared backbone; every task owns a soft-attention module per backbone
stage. At stage j task t computes a mask from the shared stage output s_j
(and its own attended feature of stage j-1), multiplies s_j by it, and a
3x3 conv carries the result to the next stage; the last attended feature
goes to the task's head.

Differences from the paper, kept on purpose: the mask is computed from the
stage output rather than from inside the last block (so any staged
backbone works), and the carried feature has ``C_{j+1} / reduction``
channels, as LibMTL's ResNet-MTAN does. No single Z is shared by the heads
(each reads its own attended feature), so representation-level strategies
do not apply: ``has_shared_representation`` is False.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn

from mtlx.interfaces import BackboneFactory

from .base import Architecture
from .modules import conv_block, require_stages, resize_like, sigmoid_gate

__all__ = ["MTAN"]


class _TaskAttention(nn.Module):
    """One task's attention modules g_j (masks) and carriers f_j (to the next stage)."""

    def __init__(self, channels: tuple[int, ...], reduction: int, spatial: bool):
        super().__init__()
        carried = [c // reduction for c in channels[1:]]
        in_ch = [channels[0]] + [c + k for c, k in zip(channels[1:], carried, strict=True)]
        self.masks = nn.ModuleList(
            sigmoid_gate(i, max(c // reduction, 1), c, spatial=spatial) for i, c in zip(in_ch, channels, strict=True)
        )
        self.carry = nn.ModuleList(
            conv_block(c, k, spatial=spatial) for c, k in zip(channels[:-1], carried, strict=True)
        )

    def forward(self, shared: list[torch.Tensor]) -> torch.Tensor:
        carried: torch.Tensor | None = None
        for j, s in enumerate(shared):
            gate_in = s if carried is None else torch.cat([s, resize_like(carried, s)], dim=1)
            attended = self.masks[j](gate_in) * s
            if j < len(self.carry):
                carried = self.carry[j](attended)
        return attended


class MTAN(Architecture):
    """MTAN: shared backbone, per-task soft attention at every stage, one head per task."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o arch.KEY=VALUE``.

        Attributes:
            reduction: the feature carried to the next stage has C_{j+1} / reduction channels
        """

        reduction: int = attrs.field(default=4, validator=attrs.validators.ge(1))

    has_shared_representation = False

    def build_shared(
        self, config: Config, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.backbone = make_backbone()
        require_stages(self.backbone, "mtan")
        spatial = len(self.backbone.out_shape) == 3
        channels = tuple(self.backbone.stage_channels)
        self.attention = nn.ModuleDict(
            {t: _TaskAttention(channels, config.reduction, spatial) for t in self.task_names}
        )
        return self.backbone.out_shape

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = []
        for stage in self.backbone.stages():
            x = stage(x)
            shared.append(x)
        return {t: self.heads[t](self.attention[t](shared)) for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.attention[task].parameters(), *self.heads[task].parameters()]
