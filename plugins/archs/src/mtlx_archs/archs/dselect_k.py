"""DSelect-k (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong & Chi, NeurIPS 2021).

MMoE's experts (``num_experts`` backbone copies, a power of two, E = 2^m)
with a sparse, differentiable gate per task. The gate holds k single-expert
selectors; selector i reads m logits z_i from the input and picks expert e
with weight ``r_i(e) = prod_j [S(z_ij) if bit j of e is 1 else 1 - S(z_ij)]``
(the paper's binary encoding), S the cubic smooth-step::

    S(t) = 0                                       if t <= -gamma / 2
           -2 / gamma^3 t^3 + 3 / (2 gamma) t + 1/2 if -gamma / 2 < t < gamma / 2
           1                                       if t >= gamma / 2

so each r_i is a distribution over the experts that becomes one-hot once
every |z_ij| >= gamma / 2. The selectors are combined by a softmax over k
more logits w: ``q = sum_i softmax(w)_i r_i``, and task t's head reads
``sum_e q_e expert_e(x)``. Both z and w are linear in the flattened input
(LibMTL's image variant of the paper's per-example gate), initialised as in the official code: z uniform in
+-gamma/100, w uniform in +-0.05.

Where this differs from LibMTL, on purpose: the smooth-step uses the
configured gamma (LibMTL passes gamma only to the initialisation, its step
always uses 1), and the paper's entropy regulariser on the selectors
(weight 1e-6 in LibMTL, which calls ``backward`` inside ``forward`` for it)
is not applied: mtlx architectures return predictions, the strategy owns
the loss. Without the regulariser the selectors need not reach one-hot, and
a code with no expert behind it could take weight; that is why E must be a
power of two (the paper's other remedy, a penalty on such codes, is a loss
term too). No single shared representation; the experts are shared, the
gates task-specific.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from mtlx.interfaces import BackboneFactory

from .base import Architecture
from .modules import mix_experts

__all__ = ["DSelectK", "binary_codes", "smooth_step"]


def _power_of_two(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 2 or value & (value - 1):
        raise ValueError(f"{attribute.name} must be a power of two >= 2 (the gate's binary encoding), got {value}")


def smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """The cubic smooth-step: 0 below -gamma/2, 1 above gamma/2, C^1 in between (the cubic at the clamped input)."""
    t = t.clamp(-gamma / 2, gamma / 2)
    return -2 / gamma**3 * t**3 + 3 / (2 * gamma) * t + 0.5


def binary_codes(num_experts: int) -> torch.Tensor:
    """``[E, m]`` booleans: row e is e in binary, most significant bit first (E = 2^m)."""
    m = num_experts.bit_length() - 1
    return torch.tensor([[(e >> (m - 1 - j)) & 1 for j in range(m)] for e in range(num_experts)], dtype=torch.bool)


class DSelectK(Architecture):
    """DSelect-k: shared experts (backbone copies), a smooth-step binary-encoded gate of k selectors per task."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o arch.KEY=VALUE``.

        Attributes:
            num_experts: number of experts (backbone copies), a power of two >= 2
            num_nonzeros: k, the selectors per gate: at most k experts per task once the gate has converged
            gamma: width of the smooth-step's cubic part; also scales the selectors' initialisation
        """

        num_experts: int = attrs.field(default=4, validator=_power_of_two)
        num_nonzeros: int = attrs.field(default=2, validator=attrs.validators.ge(1))
        gamma: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))

    has_shared_representation = False

    def build_shared(
        self, config: Config, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.gamma = config.gamma
        self.experts = nn.ModuleList(make_backbone() for _ in range(config.num_experts))
        codes = binary_codes(config.num_experts)
        self.register_buffer("codes", codes, persistent=False)  # a function of num_experts, not state
        k, m, d = config.num_nonzeros, codes.shape[1], math.prod(input_shape)
        self.selector_logits = nn.ModuleDict({t: nn.Linear(d, k * m) for t in self.task_names})
        self.selector_weights = nn.ModuleDict({t: nn.Linear(d, k) for t in self.task_names})
        with torch.no_grad():
            for p in self.selector_logits.parameters():
                p.uniform_(-config.gamma / 100, config.gamma / 100)
            for p in self.selector_weights.parameters():
                p.uniform_(-0.05, 0.05)
        return self.experts[0].out_shape

    def expert_weights(self, task: str, x: torch.Tensor) -> torch.Tensor:
        """Task ``task``'s gate on ``x``: ``[B, E]`` weights over the experts (each row sums to 1)."""
        flat = x.flatten(1)
        logits = self.selector_logits[task](flat).view(flat.shape[0], -1, self.codes.shape[1])  # [B, k, m]
        steps = smooth_step(logits, self.gamma)
        factors = [torch.where(self.codes[:, j], bit, 1 - bit) for j, bit in enumerate(steps.split(1, dim=-1))]
        selectors = factors[0]  # [B, k, E]: the product over bits
        for factor in factors[1:]:
            selectors = selectors * factor
        mix = torch.softmax(self.selector_weights[task](flat), dim=-1)  # [B, k]
        return torch.einsum("bk,bke->be", mix, selectors)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        experts = torch.stack([expert(x) for expert in self.experts])  # [E, B, *Z]
        return {t: self.heads[t](mix_experts(self.expert_weights(t, x), experts)) for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [
            *self.selector_logits[task].parameters(),
            *self.selector_weights[task].parameters(),
            *self.heads[task].parameters(),
        ]
