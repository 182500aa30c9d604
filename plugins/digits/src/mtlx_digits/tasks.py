"""The digits tasks, with the losses and metrics of their NYUv2 counterparts (datasets spec, section 1)."""

from __future__ import annotations

import functools

from mtlx import TaskSpec
from mtlx.losses import classification_loss
from mtlx.metrics import AccuracyMeter
from mtlx_dense import DepthMeter, NormalMeter, SegmentationMeter, depth_l1_loss, normal_cosine_loss

__all__ = ["DEFAULT_TASKS", "NUM_SEG_CLASSES", "TASKS"]

#: Background plus the ten digit classes.
NUM_SEG_CLASSES = 11

TASKS: dict[str, TaskSpec] = {
    "seg": TaskSpec(
        name="seg",
        kind="segmentation",
        out_channels=NUM_SEG_CLASSES,
        dense=True,
        loss=classification_loss,
        meter=functools.partial(SegmentationMeter, NUM_SEG_CLASSES),
    ),
    "depth": TaskSpec(name="depth", kind="depth", out_channels=1, dense=True, loss=depth_l1_loss, meter=DepthMeter),
    "cls": TaskSpec(
        name="cls", kind="classification", out_channels=10, dense=False, loss=classification_loss, meter=AccuracyMeter
    ),
    "normal": TaskSpec(
        name="normal", kind="normal", out_channels=3, dense=True, loss=normal_cosine_loss, meter=NormalMeter
    ),
}

#: What ``mtlx run --dataset digits`` trains: the cheap NYUv2 analogue (dense seg + depth) plus an image-level task.
DEFAULT_TASKS = ("seg", "depth", "cls")
