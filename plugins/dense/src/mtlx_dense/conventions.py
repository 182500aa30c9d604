"""Tasks, metric conventions and options shared by the dense scene datasets.

NYUv2, Cityscapes and GTA5 use the same losses and meters (datasets spec,
sections 1-2, 4): cross-entropy with -1 ignored and a confusion-matrix mIoU;
L1 depth over non-zero pixels with abs/rel errors; 1 - cosine normals with
angular-error statistics. Two conventions are options because the literature
disagrees: ``metric_aggregation`` (``global``: over every valid pixel of the
split, true median, as LibMTL; ``batch``: mean of per-batch statistics incl.
the per-batch median, as MTAN/CAGrad/Nash-MTL/FAMO) and ``absent_classes``
(``skip`` classes absent from both gt and predictions, ``nan`` as the
reference code does, or count them as IoU ``zero`` as ASTMT does).

Baselines for Delta_m are stored in the units the papers print
(:class:`StoredBaseline`) and handed out in the units our meters report
(fractions for mIoU, PixAcc and angle thresholds), so the two never mix.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import attrs

from mtlx import TaskSpec
from mtlx.losses import classification_loss

from .losses import depth_l1_loss, normal_cosine_loss
from .metrics import DepthMeter, NormalMeter, SegmentationMeter

__all__ = [
    "IGNORE_LABEL",
    "PAPER_TRAINING",
    "DenseOptions",
    "SceneOptions",
    "StoredBaseline",
    "dense_recommended",
    "depth_task",
    "normal_task",
    "segmentation_task",
]

#: The ignore label of every target these datasets produce (GTA5's 255 is mapped to it).
IGNORE_LABEL = -1

#: Meter metrics that are fractions in [0, 1] (papers often print them in percent).
FRACTION_METRICS = frozenset({"miou", "pixacc", "within_11.25", "within_22.5", "within_30"})


def _size(value: Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"resolution must be [height, width] with positive sizes, got {value!r}")
    return size  # type: ignore[return-value]


def _scales(value: Sequence[float]) -> tuple[float, ...]:
    scales = tuple(float(v) for v in value)
    if not scales or min(scales) < 1.0:
        raise ValueError(f"scales must be a non-empty list of zoom factors >= 1, got {value!r}")
    return scales


_in = attrs.validators.in_


@attrs.frozen(kw_only=True)
class SceneOptions:
    """Options of every image dataset here (subclassed by each dataset's ``Config``).

    Attributes:
        resolution: ``[height, width]`` fed to the model; None = the data's own.
            Other sizes are resampled (bilinear images/normals, nearest labels/depth).
        augment: random scale-crop-flip on the train split (MTAN/LibMTL recipe).
        scales: zoom factors the augmentation picks from.
        absent_classes: mIoU over classes that occur (``skip``), NaN like the reference (``nan``),
            or absent classes counted as IoU 0 (``zero``); see :class:`~.metrics.SegmentationMeter`.
    """

    resolution: tuple[int, int] | None = attrs.field(default=None, converter=_size)
    augment: bool = False
    scales: tuple[float, ...] = attrs.field(default=(1.0, 1.2, 1.5), converter=_scales)
    absent_classes: str = attrs.field(default="skip", validator=_in(SegmentationMeter.absent_policies))


@attrs.frozen(kw_only=True)
class DenseOptions(SceneOptions):
    """Scene options plus the aggregation of depth and normal metrics.

    Attributes:
        metric_aggregation: ``global`` (LibMTL, true median) or ``batch`` (MTAN/Nash-MTL).
    """

    metric_aggregation: str = attrs.field(default="global", validator=_in(("global", "batch")))


#: LibMTL's dense setup (its NYUv2/Cityscapes examples): hard sharing, a dilated ResNet-50 with ASPP heads (DeepLabV3+),
#: Adam 1e-4 with weight decay 1e-5.
_LIBMTL_DENSE: Mapping[str, object] = {
    "arch.name": "hps",
    "backbone.name": "resnet50-dilated",
    "head.name": "deeplab-aspp",
    "train.lr": 1e-4,
    "train.weight_decay": 1e-5,
}


def dense_recommended(batch_size: int) -> dict[str, object]:
    """A dense dataset's ``recommended``: LibMTL's model and optimiser at the dataset's ``batch_size``."""
    return {**_LIBMTL_DENSE, "train.batch_size": batch_size}


#: Training settings of the Rep-MTL paper's dense experiments: LibMTL's setup for 200 epochs, StepLR halving
#: at epoch 100, log loss transform. Each dataset's ``paper`` preset adds its own part.
PAPER_TRAINING: Mapping[str, object] = {
    **_LIBMTL_DENSE,
    "train.epochs": 200,
    "train.optimizer": "adam",
    "train.scheduler": "step",
    "train.step_size": 100,
    "train.gamma": 0.5,
    "train.loss_transform": "log",
}


def segmentation_task(num_classes: int, absent: str = "skip", name: str = "segmentation") -> TaskSpec:
    """Per-pixel classification: CE ignoring -1, confusion-matrix mIoU and pixel accuracy."""
    return TaskSpec(
        name=name,
        kind="segmentation",
        out_channels=num_classes,
        dense=True,
        loss=classification_loss,
        meter=functools.partial(SegmentationMeter, num_classes, absent=absent),
    )


def depth_task(aggregation: str = "global", name: str = "depth") -> TaskSpec:
    """Depth (or disparity) regression: L1 over non-zero pixels, abs/rel error."""
    return TaskSpec(
        name=name,
        kind="depth",
        out_channels=1,
        dense=True,
        loss=depth_l1_loss,
        meter=functools.partial(DepthMeter, aggregation=aggregation),
    )


def normal_task(aggregation: str = "global", median: str = "exact", name: str = "normal") -> TaskSpec:
    """Surface normals: 1 - cosine over non-zero pixels, angular-error statistics in degrees.

    ``median`` (global aggregation): ``exact`` keeps every error, ``histogram``
    bounds the memory (0.01-degree bins; see :class:`~.metrics.NormalMeter`).
    """
    return TaskSpec(
        name=name,
        kind="normal",
        out_channels=3,
        dense=True,
        loss=normal_cosine_loss,
        meter=functools.partial(NormalMeter, aggregation=aggregation, median=median),
    )


@attrs.frozen(kw_only=True)
class StoredBaseline:
    """Published single-task results for Delta_m.

    Attributes:
        source: where the numbers come from (paper table or code constant).
        percent: True when mIoU, PixAcc and angle thresholds are printed in percent.
        aggregation: the ``metric_aggregation`` they were computed with; compare like with like.
        table: ``{task: {metric: value}}`` as published.
    """

    source: str
    percent: bool
    aggregation: str = attrs.field(validator=_in(("global", "batch")))
    table: Mapping[str, Mapping[str, float]]

    def in_meter_units(self) -> dict[str, dict[str, float]]:
        """The table with percentages turned into fractions; errors (depth, angles, Rel Err) unchanged."""
        divisor = 100.0 if self.percent else 1.0
        return {
            task: {m: v / divisor if m in FRACTION_METRICS else v for m, v in metrics.items()}
            for task, metrics in self.table.items()
        }
