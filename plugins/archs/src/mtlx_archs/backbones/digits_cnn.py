"""A small conv net sized for the embedded 32x32 ``digits`` dataset.

Three 3x3 conv-BN-ReLU blocks (~60k parameters, ~15 MMACs per 32x32 image),
so a few epochs train in a couple of minutes on two CPU cores while still
giving a spatial Z for dense tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from torch import nn

from mtlx import ConfigError

from .base import Stage, StagedBackbone, conv_out_size
from .weights import load_backbone_weights

__all__ = ["DigitsCNN", "conv_bn_relu"]


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias: BN follows), BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DigitsCNN(StagedBackbone):
    """Small 3-block CNN: input ``(C, H, W)`` -> Z ``(channels, H/s, W/s)`` with s = ``output_stride``."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o backbone.KEY=VALUE``.

        Attributes:
            channels: channels of Z (the last two blocks; the first has half)
            output_stride: input size / Z size (2 or 4)
            weights: a local file of weights (this backbone's own ``state_dict``) to start from; None: random init
        """

        channels: int = attrs.field(default=64, validator=attrs.validators.ge(2))
        output_stride: int = attrs.field(default=2, validator=attrs.validators.in_((2, 4)))
        weights: str | None = None

    def __init__(self, config: Config, input_shape: tuple[int, ...]):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(
                f"backbone 'digits-cnn' needs image inputs (C, H, W), got input shape {tuple(input_shape)}; "
                "use backbone 'mlp' for vector data"
            )
        c = config.channels
        strides = (1, 2, 2 if config.output_stride == 4 else 1)
        widths = (c // 2, c, c)
        blocks, in_ch = [], input_shape[0]
        for width, stride in zip(widths, strides, strict=True):
            blocks.append(conv_bn_relu(in_ch, width, stride))
            in_ch = width
        self.blocks = nn.Sequential(*blocks)
        h, w = input_shape[1:]
        for stride in strides:
            h, w = conv_out_size(h, 3, stride, 1), conv_out_size(w, 3, stride, 1)
        self.out_shape = (c, h, w)
        self.stage_channels = widths
        if config.weights:
            load_backbone_weights(self, config.weights, where="backbone 'digits-cnn'")

    def stages(self) -> Sequence[Stage]:
        return list(self.blocks)
