"""DeepLabV3 head with atrous spatial pyramid pooling (Chen et al. 2017).

The dense head of the Rep-MTL paper's NYUv2/Cityscapes setup (LibMTL's
``DeepLabHead`` on a dilated ResNet-50): ASPP with rates 12/24/36 plus image
pooling, a 3x3 conv and a 1x1 classifier; the output is upsampled
bilinearly to the input size. Image-level tasks get pool + linear.

The image-pooling branch has BatchNorm on a 1x1 map, as in the paper, so a
training batch needs at least two samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from mtlx import TaskSpec

from .common import DenseOrImageHead

__all__ = ["ASPP", "ASPPHead"]


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation if kernel == 3 else 0
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class _ImagePooling(nn.Module):
    """Global context branch: average pool, 1x1 conv-BN-ReLU, broadcast back to the map size."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.proj = _conv_bn_relu(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.proj(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Parallel 1x1, three dilated 3x3 and image-pooling branches, concatenated and projected."""

    def __init__(self, in_ch: int, channels: int, rates: Sequence[int], dropout: float):
        super().__init__()
        branches = [_conv_bn_relu(in_ch, channels, 1)]
        branches += [_conv_bn_relu(in_ch, channels, 3, rate) for rate in rates]
        branches.append(_ImagePooling(in_ch, channels))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(_conv_bn_relu(len(branches) * channels, channels, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


def _int_tuple(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


class ASPPHead(DenseOrImageHead):
    """DeepLabV3 ASPP head (rates 12/24/36, 256 channels), upsampled to the input size."""

    name = "deeplab-aspp"

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o head.KEY=VALUE``.

        Attributes:
            channels: channels of every ASPP branch and of the 3x3 conv after it
            rates: dilation rates of the 3x3 ASPP branches (besides the 1x1 branch and the image pooling)
            dropout: dropout probability after the ASPP projection
        """

        channels: int = attrs.field(default=256, validator=attrs.validators.ge(1))
        rates: tuple[int, ...] = attrs.field(default=(12, 24, 36), converter=_int_tuple)
        dropout: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])

    def dense_body(self, config: Config, in_shape: tuple[int, ...], task: TaskSpec) -> nn.Module:
        return nn.Sequential(
            ASPP(in_shape[0], config.channels, config.rates, config.dropout),
            _conv_bn_relu(config.channels, config.channels, 3),
            nn.Conv2d(config.channels, task.out_channels, 1),
        )
