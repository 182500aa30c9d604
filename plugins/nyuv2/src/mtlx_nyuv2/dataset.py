"""NYUv2 in the MTAN preprocessed ``.npy`` release: segmentation (13 classes), depth, normals.

795 train and 654 test images at 288x384 (datasets spec, section 1). The
release's ``val/`` is the test set that MTAN, LibMTL and the Rep-MTL paper
report on; this dataset calls it ``test`` (see :class:`~.base.NpyReleaseDataset`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from mtlx import TaskSpec
from mtlx_dense import (
    PAPER_TRAINING,
    DenseOptions,
    Field,
    NpyReleaseDataset,
    StoredBaseline,
    dense_recommended,
    depth_task,
    normal_task,
    segmentation_task,
)

__all__ = ["NYUV2_BASELINES", "PAPER_PRESET", "NYUv2"]

NUM_CLASSES = 13

FIELDS = {
    "image": Field(directory="image", kind="image", channels=3, dtype_kinds="f", what="H x W x 3 RGB floats in [0, 1]"),
    "segmentation": Field(
        directory="label",
        kind="segmentation",
        channels=None,
        dtype_kinds="fi",
        what="H x W class ids 0..12 (stored as floats), -1 = ignore",
        num_classes=NUM_CLASSES,
    ),
    "depth": Field(
        directory="depth", kind="depth", channels=1, dtype_kinds="f", what="H x W x 1 depth in metres, 0 = invalid"
    ),
    "normal": Field(
        directory="normal",
        kind="normal",
        channels=3,
        dtype_kinds="f",
        what="H x W x 3 unit normals, all-zero = invalid",
    ),
}

EXPECTED = (
    "<root>/{train,val}/{image,label,depth,normal}/<i>.npy for i = 0..N-1 (795 train, 654 val; "
    "image 288x384x3 floats in [0,1], label 288x384 ids with -1 ignore, depth 288x384x1, normal 288x384x3)"
)
SOURCE = (
    "the MTAN preprocessed NYUv2 release (nyuv2.zip, the Dropbox link in the README of "
    "https://github.com/lorenmt/mtan or median-research-group/LibMTL examples/nyu); unzip it and pass "
    "--data-root <dir containing train/ and val/>"
)

#: Single-task baselines for Delta_m (datasets spec, section 1), selected with ``-o dataset.baseline=...``.
NYUV2_BASELINES: Mapping[str, StoredBaseline] = {
    "deeplabv3plus": StoredBaseline(
        source="Rep-MTL paper Table 1, STL row (LibMTL, DeepLabV3+ on dilated ResNet-50)",
        percent=True,
        aggregation="global",
        table={
            "segmentation": {"miou": 53.50, "pixacc": 75.39},
            "depth": {"abs_err": 0.3926, "rel_err": 0.1605},
            "normal": {"mean": 21.99, "median": 15.16, "within_11.25": 39.04, "within_22.5": 65.00, "within_30": 75.16},
        },
    ),
    "segnet": StoredBaseline(
        source="BASE array of the Nash-MTL / FAMO code ('from CAGrad'; SegNet, MTAN-style)",
        percent=False,
        aggregation="batch",
        table={
            "segmentation": {"miou": 0.3830, "pixacc": 0.6376},
            "depth": {"abs_err": 0.6754, "rel_err": 0.2780},
            "normal": {
                "mean": 25.01,
                "median": 19.21,
                "within_11.25": 0.3014,
                "within_22.5": 0.5720,
                "within_30": 0.6915,
            },
        },
    ),
}

#: The Rep-MTL / LibMTL NYUv2 setting (rep-mtl.md, "What the paper reports"; LibMTL examples/nyu --aug).
PAPER_PRESET: Mapping[str, Any] = {
    **PAPER_TRAINING,
    "dataset.resolution": [288, 384],
    "dataset.augment": True,
    "dataset.baseline": "deeplabv3plus",
    "dataset.metric_aggregation": "global",
    "train.batch_size": 8,
    "train.eval_batch_size": 8,
}


class NYUv2(NpyReleaseDataset):
    """NYUv2 (MTAN .npy release): 13-class segmentation, depth and surface normals."""

    @attrs.frozen(kw_only=True)
    class Config(DenseOptions):
        """NYUv2 options.

        Attributes:
            baseline: the STL table for Delta_m (``none``: no Delta_m).
            normal_median: ``exact`` keeps every normal error of the split for the true median
                (~0.6 GB on the 654 test images); ``histogram`` counts them in 0.01-degree bins
                (fixed memory, median within 0.01 degrees). Only with ``metric_aggregation=global``.
        """

        baseline: str = attrs.field(default="deeplabv3plus", validator=attrs.validators.in_((*NYUV2_BASELINES, "none")))
        normal_median: str = attrs.field(default="exact", validator=attrs.validators.in_(("exact", "histogram")))

        def __attrs_post_init__(self) -> None:
            if self.normal_median == "histogram" and self.metric_aggregation != "global":
                raise ValueError(
                    "normal_median=histogram needs metric_aggregation=global (per-batch medians are exact already)"
                )

    name = "nyuv2"
    expected = EXPECTED
    source = SOURCE
    baselines = NYUV2_BASELINES
    recommended: ClassVar[Mapping[str, Any]] = dense_recommended(batch_size=8)
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"paper": PAPER_PRESET}

    def __init__(self, config: Config, root: str | Path | None):
        super().__init__(config, root)
        self._tasks = {
            "segmentation": segmentation_task(NUM_CLASSES, config.absent_classes),
            "depth": depth_task(config.metric_aggregation),
            "normal": normal_task(config.metric_aggregation, config.normal_median),
        }

    @property
    def fields(self) -> Mapping[str, Field]:
        return FIELDS

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return self._tasks
