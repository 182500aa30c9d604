"""Progressive Layered Extraction, PLE (Tang, Liu, Zhao & Gong, RecSys 2020): CGC levels stacked on backbone stages.

Level k runs stage k of every expert (each expert is a backbone copy, so the
backbone must be staged). Each task t carries its own stream and the shared
experts carry a shared stream; at level k (the paper's PLE gates)::

    g_t^k = softmax(W_t^k flatten(g_t^{k-1})) . [shared experts^k(g_s^{k-1}), t's experts^k(g_t^{k-1})]
    g_s^k = softmax(W_s^k flatten(g_s^{k-1})) . [shared experts^k(g_s^{k-1}), every task's experts^k(g_.^{k-1})]

with ``g^0 = x`` for every stream; the last level has no shared gate, and
task t's head reads ``g_t`` of the last level. On a one-stage backbone PLE
is CGC.

LibMTL's PLE has no shared gate: its shared experts run on each task's
stream separately. Here the shared stream follows the paper (the shared
experts run once per level). Through the shared gates, every task's loss
depends on everything below the last two levels, so only task t's experts
of the last level, its gates of the last two levels and its head are task
t's parameters; the rest is shared. No single Z is shared by the heads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlx.interfaces import BackboneFactory

from .base import Architecture
from .cgc import ExpertCounts
from .modules import gated_mixture, require_stages, stage_input_shapes, stage_parameters

__all__ = ["PLE"]


def _gates(shapes: list[tuple[int, ...]], num_experts: int) -> nn.ModuleList:
    """One softmax gate per level, each a linear layer on that level's flattened input."""
    return nn.ModuleList(nn.Linear(math.prod(shape), num_experts) for shape in shapes)


class PLE(Architecture):
    """PLE: CGC at every backbone stage, with a shared stream mixing all experts between levels."""

    Config = ExpertCounts
    has_shared_representation = False

    def build_shared(
        self, config: ExpertCounts, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.shared_experts, self.task_experts = config.experts(self.task_names, make_backbone)
        for expert in [*self.shared_experts, *(e for t in self.task_names for e in self.task_experts[t])]:
            require_stages(expert, "ple")
        shapes = stage_input_shapes(self.shared_experts[0], input_shape)
        n_shared, n_task = config.num_shared_experts, config.num_task_experts
        self.task_gates = nn.ModuleDict({t: _gates(shapes, n_shared + n_task) for t in self.task_names})
        self.shared_gates = _gates(shapes[:-1], n_shared + len(self.task_names) * n_task)
        return self.shared_experts[0].out_shape

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared_stages = [expert.stages() for expert in self.shared_experts]
        task_stages = {t: [expert.stages() for expert in self.task_experts[t]] for t in self.task_names}
        shared_in, task_in = x, dict.fromkeys(self.task_names, x)
        for k in range(len(shared_stages[0])):
            shared = torch.stack([stages[k](shared_in) for stages in shared_stages])  # [S, B, *Z_k]
            own = {t: torch.stack([stages[k](task_in[t]) for stages in task_stages[t]]) for t in self.task_names}
            task_out = {t: gated_mixture(self.task_gates[t][k], task_in[t], [shared, own[t]]) for t in self.task_names}
            if k < len(self.shared_gates):
                shared_in = gated_mixture(self.shared_gates[k], shared_in, [shared, *own.values()])
            task_in = task_out
        return {t: self.heads[t](task_in[t]) for t in self.task_names}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        gates = self.task_gates[task]
        last_experts = [p for expert in self.task_experts[task] for p in stage_parameters(expert, -1)]
        own_gates = [*gates[-1].parameters(), *(gates[-2].parameters() if len(gates) > 1 else [])]
        return [*last_experts, *own_gates, *self.heads[task].parameters()]

    def shared_parameters(self) -> list[nn.Parameter]:
        owned = {id(p) for t in self.task_names for p in self.task_parameters(t)}
        return [p for p in self.parameters() if id(p) not in owned]
