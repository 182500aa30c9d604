"""ResNet-18/50 backbones (He et al. 2016), with torchvision's parameter names.

Written here because torchvision is not installable with the CPU torch build;
the module tree (``conv1``, ``bn1``, ``layer1``..``layer4``, blocks with
``conv1/bn1/conv2/bn2[/conv3/bn3]`` and ``downsample.0/1``) matches
torchvision's ResNet exactly so that ``-o backbone.weights=resnet50.pth``
loads an ImageNet checkpoint saved from torchvision (its ``fc.*`` keys are
skipped: the backbone ends before the classifier). The bottleneck strides
in the 3x3 conv ("ResNet v1.5"), as torchvision does.

``output_stride`` 16 or 8 replaces the stride of layer4 (and layer3) by
dilation, as DeepLabV3+ does (``resnet50-dilated`` defaults to 8, the
NYUv2/Cityscapes setup of the Rep-MTL paper, following LibMTL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from mtlx import ConfigError

from .base import Stage, StagedBackbone, conv_out_size
from .weights import load_backbone_weights

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "ResNet18", "ResNet50", "ResNet50Dilated"]


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion: ClassVar[int] = 1

    def __init__(self, in_ch: int, planes: int, stride: int, downsample: nn.Module | None, dilation: int):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand x4, residual (ResNet-50+)."""

    expansion: ClassVar[int] = 4

    def __init__(self, in_ch: int, planes: int, stride: int, downsample: nn.Module | None, dilation: int):
        super().__init__()
        self.conv1 = _conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_DILATED_LAYERS = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


class ResNet(StagedBackbone):
    """ResNet trunk without avgpool/fc: input ``(C, H, W)`` -> Z ``(512*e, H/s, W/s)``.

    Subclasses set ``block``, ``layers``, ``name`` and their ``Config``.
    """

    block: ClassVar[type[BasicBlock | Bottleneck]]
    layers: ClassVar[tuple[int, int, int, int]]
    name: ClassVar[str]

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o backbone.KEY=VALUE``.

        Attributes:
            output_stride: input size / Z size: 32 (plain), 16 or 8 (the last stages dilated instead of strided)
            weights: a local file of torchvision ImageNet weights (``-o backbone.weights=resnet50.pth``; ``fc.*``
                skipped); None: random init
        """

        output_stride: int = attrs.field(default=32, validator=attrs.validators.in_(tuple(_DILATED_LAYERS)))
        weights: str | None = None

    def __init__(self, config: Config, input_shape: tuple[int, ...]):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(
                f"backbone {self.name!r} needs image inputs (C, H, W), got input shape {tuple(input_shape)}"
            )
        self.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._in_ch, self._dilation = 64, 1
        dilate = _DILATED_LAYERS[config.output_stride]
        self.layer1 = self._make_layer(64, self.layers[0], stride=1, dilate=False)
        self.layer2 = self._make_layer(128, self.layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(256, self.layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(512, self.layers[3], stride=2, dilate=dilate[2])
        self._init_weights()
        e = self.block.expansion
        self.stage_channels = (64 * e, 128 * e, 256 * e, 512 * e)
        self.out_shape = (512 * e, *self._out_size(input_shape[1:], config.output_stride))
        if config.weights:
            load_backbone_weights(self, config.weights, where=f"backbone {self.name!r}", ignore_prefixes=("fc.",))

    def _make_layer(self, planes: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        """torchvision's rule: a dilated layer keeps the resolution; its first block uses the previous dilation."""
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        out_ch = planes * self.block.expansion
        downsample = None
        if stride != 1 or self._in_ch != out_ch:
            downsample = nn.Sequential(_conv1x1(self._in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        layers = [self.block(self._in_ch, planes, stride, downsample, previous_dilation)]
        self._in_ch = out_ch
        layers += [self.block(out_ch, planes, 1, None, self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _out_size(size: Sequence[int], output_stride: int) -> tuple[int, int]:
        strides = {32: 3, 16: 2, 8: 1}[output_stride]  # stride-2 stages among layer2..4
        out = []
        for s in size:
            s = conv_out_size(conv_out_size(s, 7, 2, 3), 3, 2, 1)
            for _ in range(strides):
                s = conv_out_size(s, 3, 2, 1)
            out.append(s)
        return out[0], out[1]

    def _stem_and_layer1(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))

    def stages(self) -> Sequence[Stage]:
        return [self._stem_and_layer1, self.layer2, self.layer3, self.layer4]


class ResNet18(ResNet):
    """ResNet-18 trunk (BasicBlock, [2, 2, 2, 2]), Z: 512 channels at stride 32 (or 16/8 dilated)."""

    block, layers, name = BasicBlock, (2, 2, 2, 2), "resnet18"


class ResNet50(ResNet):
    """ResNet-50 trunk (Bottleneck, [3, 4, 6, 3]), Z: 2048 channels at stride 32 (or 16/8 dilated)."""

    block, layers, name = Bottleneck, (3, 4, 6, 3), "resnet50"


class ResNet50Dilated(ResNet50):
    """ResNet-50 with layer3/4 dilated (output stride 8), the DeepLabV3+ encoder of the NYUv2/Cityscapes setup."""

    name = "resnet50-dilated"

    @attrs.frozen(kw_only=True)
    class Config(ResNet.Config):
        output_stride: int = attrs.field(default=8, validator=attrs.validators.in_(tuple(_DILATED_LAYERS)))
