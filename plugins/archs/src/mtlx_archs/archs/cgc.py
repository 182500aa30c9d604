"""Customized Gate Control, CGC (Tang, Liu, Zhao & Gong, RecSys 2020; the single-level PLE).

Experts are backbone copies that all see the input: ``num_shared_experts``
shared by every task and ``num_task_experts`` owned by each task. Task t's
gate, a linear layer on the flattened input followed by a softmax (LibMTL's
image variant of the paper's gates, as for MMoE), mixes the shared experts
and t's own (the paper's CGC gate)::

    w_t(x) = softmax(W_t flatten(x))
    g_t(x) = sum_e w_t(x)_e S_t(x)_e,   S_t = [shared experts, task t's experts]

and task t's head reads ``g_t(x)``. Each task decodes its own mixture, so
there is no single shared representation; the shared experts are the shared
parameters, a task's experts, gate and head its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
from torch import nn

from mtlx.interfaces import BackboneFactory

from .base import Architecture
from .modules import gated_mixture

__all__ = ["CGC", "ExpertCounts"]


@attrs.frozen(kw_only=True)
class ExpertCounts:
    """Options of ``-o arch.KEY=VALUE``.

    Attributes:
        num_shared_experts: experts (backbone copies) shared by every task's gate
        num_task_experts: experts (backbone copies) each task owns; its gate mixes them with the shared ones
    """

    num_shared_experts: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    num_task_experts: int = attrs.field(default=1, validator=attrs.validators.ge(1))

    def experts(self, task_names: Sequence[str], make_backbone: BackboneFactory) -> tuple[nn.ModuleList, nn.ModuleDict]:
        """The shared experts, then each task's own (whole backbone copies, built in that order)."""
        shared = nn.ModuleList(make_backbone() for _ in range(self.num_shared_experts))
        own = nn.ModuleDict({t: nn.ModuleList(make_backbone() for _ in range(self.num_task_experts)) for t in task_names})
        return shared, own


class CGC(Architecture):
    """CGC: shared and task-owned experts (backbone copies), a softmax gate per task on the input, one head per task."""

    Config = ExpertCounts
    has_shared_representation = False

    def build_shared(
        self, config: ExpertCounts, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.shared_experts, self.task_experts = config.experts(self.task_names, make_backbone)
        n = config.num_shared_experts + config.num_task_experts
        self.gates = nn.ModuleDict({t: nn.Linear(math.prod(input_shape), n) for t in self.task_names})
        return self.shared_experts[0].out_shape

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = torch.stack([expert(x) for expert in self.shared_experts])  # [S, B, *Z]
        out = {}
        for t in self.task_names:
            own = torch.stack([expert(x) for expert in self.task_experts[t]])  # [E, B, *Z]
            out[t] = self.heads[t](gated_mixture(self.gates[t], x, [shared, own]))
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.shared_experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.task_experts[task].parameters(), *self.gates[task].parameters(), *self.heads[task].parameters()]
