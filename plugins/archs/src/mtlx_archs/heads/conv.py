"""Light dense head: 3x3 conv-BN-ReLU layers, a 1x1 classifier, bilinear upsampling to the input size."""

from __future__ import annotations

import attrs
from torch import nn

from mtlx import TaskSpec

from .common import DenseOrImageHead

__all__ = ["ConvHead"]


class ConvHead(DenseOrImageHead):
    """Dense tasks: ``num_layers`` x (3x3 conv-BN-ReLU) + 1x1 conv, upsampled; image-level: pool + linear."""

    name = "conv"

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o head.KEY=VALUE``.

        Attributes:
            hidden_channels: channels of each 3x3 conv-BN-ReLU layer
            num_layers: 3x3 conv-BN-ReLU layers before the 1x1 classifier (0: the classifier alone)
        """

        hidden_channels: int = attrs.field(default=64, validator=attrs.validators.ge(1))
        num_layers: int = attrs.field(default=1, validator=attrs.validators.ge(0))

    def dense_body(self, config: Config, in_shape: tuple[int, ...], task: TaskSpec) -> nn.Module:
        layers: list[nn.Module] = []
        width = in_shape[0]
        for _ in range(config.num_layers):
            layers += [
                nn.Conv2d(width, config.hidden_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(config.hidden_channels),
                nn.ReLU(inplace=True),
            ]
            width = config.hidden_channels
        layers.append(nn.Conv2d(width, task.out_channels, 1))
        return nn.Sequential(*layers)
