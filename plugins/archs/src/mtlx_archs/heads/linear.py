"""Linear head: a linear layer on (pooled) Z; for dense tasks a 1x1 conv upsampled to the input size."""

from __future__ import annotations

import attrs
from torch import nn

from mtlx import TaskSpec

from .common import DenseOrImageHead

__all__ = ["LinearHead"]


class LinearHead(DenseOrImageHead):
    """The lightest head: what a linear probe on Z can do for each task."""

    name = "linear"

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    def dense_body(self, config: Config, in_shape: tuple[int, ...], task: TaskSpec) -> nn.Module:
        return nn.Conv2d(in_shape[0], task.out_channels, 1)
