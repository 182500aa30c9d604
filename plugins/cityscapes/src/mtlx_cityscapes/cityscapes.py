"""Cityscapes in the MTAN preprocessed ``.npy`` release: segmentation (7, 19 or 2 classes) and disparity.

2975 train and 500 test images at 128x256 (or 256x512 in the larger
release), datasets spec section 2. ``label_7`` holds the 7 categories
(flat, construction, object, nature, sky, human, vehicle), ``label_19`` the
standard train ids, ``label_2`` a 2-class version; -1 is ignore. ``depth``
is disparity (inverse depth, about 0-0.49), 0 = invalid, so Rel Err is large
(tens) by construction. The release's ``val/`` is the test set.
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
    segmentation_task,
)

__all__ = ["CITYSCAPES_BASELINES", "IMAGE_FIELD", "PAPER_PRESET", "Cityscapes", "label_field"]

IMAGE_FIELD = Field(directory="image", kind="image", channels=3, dtype_kinds="f", what="H x W x 3 RGB floats in [0, 1]")
DEPTH_FIELD = Field(
    directory="depth",
    kind="depth",
    channels=1,
    dtype_kinds="f",
    what="H x W x 1 disparity (inverse depth), 0 = invalid",
)


def label_field(classes: int, directory: str | None = None) -> Field:
    """The label directory of the ``classes``-class version (``label_<classes>`` unless renamed)."""
    return Field(
        directory=directory or f"label_{classes}",
        kind="segmentation",
        channels=None,
        dtype_kinds="fi",
        what=f"H x W class ids 0..{classes - 1} (stored as floats), -1 = ignore",
        num_classes=classes,
    )


EXPECTED = (
    "<root>/{train,val}/{image,label_7,label_19,depth}/<i>.npy for i = 0..N-1 (2975 train, 500 val; "
    "image 128x256x3 floats in [0,1], label_* 128x256 ids with -1 ignore, depth 128x256x1 disparity)"
)
SOURCE = (
    "the MTAN preprocessed Cityscapes release (128x256, or 256x512; the Dropbox links in the README of "
    "https://github.com/lorenmt/mtan, also used by LibMTL examples/cityscapes); unzip it and pass "
    "--data-root <dir containing train/ and val/>"
)

#: Single-task 7-class baselines for Delta_m (datasets spec, section 2), selected with ``-o dataset.baseline=...``.
CITYSCAPES_BASELINES: Mapping[str, StoredBaseline] = {
    "deeplabv3plus": StoredBaseline(
        source="Rep-MTL paper Table 2, STL row (LibMTL, DeepLabV3+ on dilated ResNet-50), 7 classes",
        percent=True,
        aggregation="global",
        table={"segmentation": {"miou": 69.06, "pixacc": 91.54}, "depth": {"abs_err": 0.01282, "rel_err": 43.53}},
    ),
    "segnet": StoredBaseline(
        source="BASE of FAMO experiments/cityscapes/utils.py (CAGrad/FAMO, SegNet), 7 classes",
        percent=False,
        aggregation="batch",
        table={"segmentation": {"miou": 0.7401, "pixacc": 0.9316}, "depth": {"abs_err": 0.0125, "rel_err": 27.77}},
    ),
}

#: The Rep-MTL / LibMTL Cityscapes setting: 7 classes at 128x256, batch 64, no augmentation
#: (LibMTL's examples/cityscapes loader has none).
PAPER_PRESET: Mapping[str, Any] = {
    **PAPER_TRAINING,
    "dataset.classes": 7,
    "dataset.resolution": [128, 256],
    "dataset.augment": False,
    "dataset.baseline": "deeplabv3plus",
    "dataset.metric_aggregation": "global",
    "train.batch_size": 64,
    "train.eval_batch_size": 64,
}


def _default_baseline(config: Any) -> str:
    return "deeplabv3plus" if config.classes == 7 else "none"


class Cityscapes(NpyReleaseDataset):
    """Cityscapes (MTAN .npy release): 7- or 19-class segmentation and disparity."""

    @attrs.frozen(kw_only=True)
    class Config(DenseOptions):
        """Cityscapes options.

        Attributes:
            classes: 7 (categories, the MTL benchmark), 19 (train ids) or 2.
            label_dir: label directory; default ``label_<classes>`` (LibMTL renames it ``label``).
            baseline: STL table for Delta_m; stored for 7 classes only (default
                ``deeplabv3plus`` with 7 classes, ``none`` otherwise).
        """

        classes: int = attrs.field(default=7, validator=attrs.validators.in_((2, 7, 19)))
        label_dir: str | None = None
        baseline: str = attrs.field(
            default=attrs.Factory(_default_baseline, takes_self=True),
            validator=attrs.validators.in_((*CITYSCAPES_BASELINES, "none")),
        )

        def __attrs_post_init__(self) -> None:
            if self.baseline != "none" and self.classes != 7:
                raise ValueError(
                    f"baseline {self.baseline!r} is a 7-class result; with classes={self.classes} "
                    "use baseline=none (no stored single-task baseline)"
                )

    name = "cityscapes"
    expected = EXPECTED
    source = SOURCE
    baselines = CITYSCAPES_BASELINES
    recommended: ClassVar[Mapping[str, Any]] = dense_recommended(batch_size=64)
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"paper": PAPER_PRESET}

    def __init__(self, config: Config, root: str | Path | None):
        super().__init__(config, root)
        self._fields = {
            "image": IMAGE_FIELD,
            "segmentation": label_field(config.classes, config.label_dir),
            "depth": DEPTH_FIELD,
        }
        self._tasks = {
            "segmentation": segmentation_task(config.classes, config.absent_classes),
            "depth": depth_task(config.metric_aggregation),
        }

    @property
    def fields(self) -> Mapping[str, Field]:
        return self._fields

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return self._tasks
