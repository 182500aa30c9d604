"""Shared fixtures: task sets shaped like the paper's benchmarks, and a model builder."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import pytest

from mtlx import TaskSpec
from mtlx.losses import classification_loss, mse_loss
from mtlx.metrics import AccuracyMeter, MAEMeter
from mtlx_archs.plugin import ARCHS, BACKBONES, HEADS
from mtlx_dense import DepthMeter, NormalMeter, SegmentationMeter, depth_l1_loss, normal_cosine_loss
from mtlx_testing.fixtures import single_thread  # noqa: F401  (autouse pytest fixture)


def _seg(n: int) -> TaskSpec:
    return TaskSpec(
        name="seg",
        kind="segmentation",
        out_channels=n,
        dense=True,
        loss=classification_loss,
        meter=functools.partial(SegmentationMeter, n),
    )


_DEPTH = TaskSpec(name="depth", kind="depth", out_channels=1, dense=True, loss=depth_l1_loss, meter=DepthMeter)
_NORMAL = TaskSpec(name="normal", kind="normal", out_channels=3, dense=True, loss=normal_cosine_loss, meter=NormalMeter)


def _cls(name: str, n: int) -> TaskSpec:
    return TaskSpec(
        name=name, kind="classification", out_channels=n, dense=False, loss=classification_loss, meter=AccuracyMeter
    )


#: benchmark -> (input shape, tasks): NYUv2 288x384, Cityscapes 128x256, Office-31 224x224 (image-level),
#: plus QM9-like vectors (11 regression targets).
BENCHMARKS: dict[str, tuple[tuple[int, ...], dict[str, TaskSpec]]] = {
    "nyuv2": ((3, 288, 384), {"seg": _seg(13), "depth": _DEPTH, "normal": _NORMAL}),
    "cityscapes": ((3, 128, 256), {"seg": _seg(7), "depth": _DEPTH}),
    "office": ((3, 224, 224), {t: _cls(t, 31) for t in ("amazon", "dslr", "webcam")}),
    "qm9": (
        (11,),
        {
            f"y{i}": TaskSpec(
                name=f"y{i}", kind="regression", out_channels=1, dense=False, loss=mse_loss, meter=MAEMeter
            )
            for i in range(3)
        },
    ),
}


def build_model(
    arch: str,
    backbone: str,
    head: str,
    input_shape: tuple[int, ...],
    tasks: Mapping[str, TaskSpec],
    options: Mapping[str, Mapping[str, object]] | None = None,
) -> object:
    """Build like ``mtlx.build.build_model`` does: one factory per component, options per section."""
    b_cls, h_cls, a_cls = BACKBONES[backbone], HEADS[head], ARCHS[arch]
    options = options or {}
    b_cfg = b_cls.Config(**options.get("backbone", {}))
    h_cfg = h_cls.Config(**options.get("head", {}))
    a_cfg = a_cls.Config(**options.get("arch", {}))
    return a_cls(
        a_cfg,
        tasks=tasks,
        input_shape=input_shape,
        make_backbone=lambda: b_cls(b_cfg, input_shape),
        make_head=lambda task, in_shape: h_cls(h_cfg, in_shape, task, input_shape),
    )


@pytest.fixture
def make_model() -> Callable[..., object]:
    return build_model


@pytest.fixture
def benchmarks() -> dict[str, tuple[tuple[int, ...], dict[str, TaskSpec]]]:
    return BENCHMARKS
