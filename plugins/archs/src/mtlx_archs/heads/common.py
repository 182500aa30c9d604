"""Pieces every head shares: the image-level branch and resizing dense outputs.

One ``--head`` must serve a dataset that mixes dense tasks (per-pixel
output at the input's size) and image-level tasks (a vector per sample), on
spatial Z ``[B, C, H, W]`` or vector Z ``[B, D]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlx import ConfigError, TaskHead, TaskSpec

__all__ = ["DenseOrImageHead", "ImageLevelHead", "dense_output_size", "resize_to"]


class ImageLevelHead(nn.Module):
    """Global average pool (spatial Z only) then a linear layer to ``out_channels``."""

    def __init__(self, in_shape: tuple[int, ...], out_channels: int):
        super().__init__()
        self.fc = nn.Linear(in_shape[0], out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 4:
            z = z.mean(dim=(2, 3))
        return self.fc(z)


def dense_output_size(
    head: str, in_shape: tuple[int, ...], task: TaskSpec, input_shape: tuple[int, ...]
) -> tuple[int, int]:
    """The ``(H, W)`` a dense task's prediction must have; errors if Z or the input has no spatial size."""
    if len(in_shape) != 3 or len(input_shape) != 3:
        raise ConfigError(
            f"head {head!r} cannot produce dense task {task.name!r} from Z of shape {tuple(in_shape)} "
            f"and input of shape {tuple(input_shape)}: dense tasks need a spatial backbone (e.g. resnet18, digits-cnn)"
        )
    return int(input_shape[1]), int(input_shape[2])


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling to ``size`` (a no-op when already there)."""
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DenseOrImageHead(TaskHead):
    """Base of the heads here: a dense body (upsampled to the input size) or :class:`ImageLevelHead`.

    Subclasses implement :meth:`dense_body`; the image-level branch and the
    resizing are the same for every head.
    """

    name: str

    def __init__(self, config: object, in_shape: tuple[int, ...], task: TaskSpec, input_shape: tuple[int, ...]):
        super().__init__()
        self.dense = task.dense
        if task.dense:
            self.size = dense_output_size(self.name, in_shape, task, input_shape)
            self.body: nn.Module = self.dense_body(config, in_shape, task)
        else:
            self.body = ImageLevelHead(in_shape, task.out_channels)

    def dense_body(self, config: object, in_shape: tuple[int, ...], task: TaskSpec) -> nn.Module:
        """Z ``[B, C, H', W']`` -> ``[B, out_channels, h, w]`` at any resolution (upsampled afterwards)."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.body(z)
        return resize_to(out, self.size) if self.dense else out
