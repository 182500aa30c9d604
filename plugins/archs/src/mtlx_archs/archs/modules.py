"""Building blocks shared by the architectures: gates, task convs and stage access.

Every block works on spatial features ``[B, C, H, W]`` (convolutions) and on
vector features ``[B, D]`` (linear layers), so each architecture runs on the
ResNets, ``digits-cnn`` and ``mlp`` alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtlx import Backbone, ConfigError

from ..backbones.base import Stage, StagedBackbone

__all__ = ["conv_block", "require_stages", "resize_like", "sigmoid_gate"]


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
