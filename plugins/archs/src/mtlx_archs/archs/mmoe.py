"""Multi-gate Mixture-of-Experts, MMoE (Ma et al., KDD 2018).

``num_experts`` backbone copies (the experts) see the same input; each task
has a gate, a linear layer on the flattened input followed by a softmax
over experts (LibMTL's image variant of the paper's gates), and its head
reads the gate-weighted sum of expert outputs. Tasks share the experts but
each decodes its own mixture, so there is no single shared representation.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from mtlx.interfaces import BackboneFactory

from .base import Architecture
from .modules import gated_mixture

__all__ = ["MMoE"]


class MMoE(Architecture):
    """MMoE: shared experts (backbone copies), a softmax gate per task on the input, one head per task."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o arch.KEY=VALUE``.

        Attributes:
            num_experts: number of experts (backbone copies) the task gates mix
        """

        num_experts: int = attrs.field(default=4, validator=attrs.validators.ge(1))

    has_shared_representation = False

    def build_shared(
        self, config: Config, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.experts = nn.ModuleList(make_backbone() for _ in range(config.num_experts))
        self.gates = nn.ModuleDict({t: nn.Linear(math.prod(input_shape), config.num_experts) for t in self.task_names})
        return self.experts[0].out_shape

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        experts = torch.stack([expert(x) for expert in self.experts])  # [E, B, *Z]
        return {t: self.heads[t](gated_mixture(self.gates[t], x, [experts])) for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.gates[task].parameters(), *self.heads[task].parameters()]
