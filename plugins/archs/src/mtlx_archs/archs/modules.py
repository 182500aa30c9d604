"""Building blocks shared by the architectures: gates, task convs, expert mixing and stage access.

Every block works on spatial features ``[B, C, H, W]`` (convolutions) and on
vector features ``[B, D]`` (linear layers), so each architecture runs on the
ResNets, ``digits-cnn`` and ``mlp`` alike.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtlx import Backbone, ConfigError

from ..backbones.base import Stage, StagedBackbone

__all__ = [
    "conv_block",
    "gated_mixture",
    "mix_experts",
    "require_stages",
    "resize_like",
    "sigmoid_gate",
    "stage_input_shapes",
    "stage_parameters",
]


def _layer(in_ch: int, out_ch: int, spatial: bool, kernel: int = 1) -> nn.Module:
    if spatial:
        return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False)
    return nn.Linear(in_ch, out_ch, bias=False)


def _norm(ch: int, spatial: bool) -> nn.Module:
    # Vector features skip normalisation: BatchNorm1d cannot train on a batch of one.
    return nn.BatchNorm2d(ch) if spatial else nn.Identity()


def sigmoid_gate(in_ch: int, mid_ch: int, out_ch: int, *, spatial: bool, kernel: int = 1) -> nn.Sequential:
    """``layer(kernel)-norm-ReLU-layer(1x1)-norm-sigmoid``: a soft mask in (0, 1) with ``out_ch`` channels."""
    return nn.Sequential(
        _layer(in_ch, mid_ch, spatial, kernel),
        _norm(mid_ch, spatial),
        nn.ReLU(inplace=True),
        _layer(mid_ch, out_ch, spatial),
        _norm(out_ch, spatial),
        nn.Sigmoid(),
    )


def conv_block(in_ch: int, out_ch: int, *, spatial: bool) -> nn.Sequential:
    """3x3 conv-BN-ReLU (spatial) or linear-ReLU (vector)."""
    return nn.Sequential(_layer(in_ch, out_ch, spatial, kernel=3), _norm(out_ch, spatial), nn.ReLU(inplace=True))


def require_stages(backbone: Backbone, arch: str) -> Sequence[Stage]:
    """The backbone's stages; a clear error for backbones that are one opaque module."""
    if not isinstance(backbone, StagedBackbone):
        raise ConfigError(
            f"architecture {arch!r} taps every stage of the backbone, but {type(backbone).__name__} "
            "is not a StagedBackbone (mtlx_archs.backbones.base); use a backbone of mtlx-archs or architecture 'hps'"
        )
    return backbone.stages()


def resize_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bring a task feature to the resolution of the next stage (max-pool down, as MTAN; bilinear up)."""
    if x.dim() != 4 or x.shape[-2:] == ref.shape[-2:]:
        return x
    if x.shape[-2] >= ref.shape[-2] and x.shape[-1] >= ref.shape[-1]:
        return F.adaptive_max_pool2d(x, ref.shape[-2:])
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def mix_experts(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``sum_e weights[:, e] * experts[e]``: per-sample weights ``[B, E]``, stacked expert outputs ``[E, B, *Z]``."""
    return torch.einsum("be,eb...->b...", weights, experts)


def gated_mixture(gate: nn.Module, gate_input: torch.Tensor, groups: Sequence[torch.Tensor]) -> torch.Tensor:
    """The softmax gate of MMoE, CGC and PLE: ``softmax(gate(flatten(gate_input)))`` mixes the experts.

    ``groups`` are stacked expert outputs ``[E_g, B, *Z]`` that the gate's outputs cover in order (shared
    experts, then a task's own): each group is mixed where it lies, so experts shared by several gates
    are never copied into one stack per gate.
    """
    weights = torch.softmax(gate(gate_input.flatten(1)), dim=-1)
    parts = weights.split([group.shape[0] for group in groups], dim=1)
    out = mix_experts(parts[0], groups[0])
    for part, group in zip(parts[1:], groups[1:], strict=True):
        out = out + mix_experts(part, group)
    return out


def stage_input_shapes(backbone: StagedBackbone, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Per-sample shape of each stage's input (the first is ``input_shape``), by a forward on the meta device.

    A meta copy computes shapes without arithmetic, so sizing the gates of a staged architecture costs
    nothing even for a dilated ResNet-50 at NYUv2 size, and the backbone's own state is left untouched.
    """
    probe = copy.deepcopy(backbone).to(device="meta")
    x = torch.empty(1, *input_shape, device="meta")
    shapes = []
    with torch.no_grad():
        for stage in probe.stages():
            shapes.append(tuple(x.shape[1:]))
            x = stage(x)
    return shapes


def stage_parameters(backbone: StagedBackbone, index: int) -> list[nn.Parameter]:
    """The parameters of stage ``index`` when it is a module; none for a stage that is a function of the backbone.

    Callers use it to name a stage's parameters task-specific; a stage that is not a module (the ResNets'
    stem-and-layer1 method) stays with the shared parameters, which over-approximates and is always safe.
    """
    stage = backbone.stages()[index]
    return list(stage.parameters()) if isinstance(stage, nn.Module) else []
