"""The five PASCAL-Context tasks as TaskSpecs, and their primary metrics for Delta_m.

Primary metrics (one per task, the MTI-Net/ASTMT convention): semseg mIoU,
parts mIoU, saliency mIoU (``maxf`` with ``sal_primary="maxf"``, as
InvPT/TaskPrompter report), normals mean angle, edge ODS F.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import attrs

from mtlx import TaskSpec

from .classes import PART_CLASSES, VOC_CLASSES
from .losses import edge_loss, label_loss, normals_l1_loss, saliency_loss, scaled
from .meters import EdgeMeter, PascalNormalMeter, PascalSegmentationMeter, SaliencyMeter

__all__ = ["PAPER_LOSS_WEIGHTS", "TASK_NAMES", "build_tasks", "primary_metrics"]

#: Canonical task order (the order of losses and weights whatever order the user lists them in).
TASK_NAMES = ("semseg", "parts", "normals", "sal", "edge")

#: Fixed loss weights of the ResNet-18 multi-task baseline of Vandenhende et al. (``paper`` preset).
PAPER_LOSS_WEIGHTS = {"semseg": 1.0, "parts": 2.0, "sal": 5.0, "edge": 50.0, "normals": 10.0}


def _spec(name: str, *, edge_thresholds: int, edge_max_dist: float) -> TaskSpec:
    kind, out_channels, loss, meter = {
        "semseg": ("segmentation", len(VOC_CLASSES), label_loss, partial(PascalSegmentationMeter, len(VOC_CLASSES))),
        "parts": (
            "segmentation",
            len(PART_CLASSES),
            label_loss,
            partial(PascalSegmentationMeter, len(PART_CLASSES), skip_background_only=True),
        ),
        "normals": ("normal", 3, normals_l1_loss, PascalNormalMeter),
        "sal": ("saliency", 1, saliency_loss, SaliencyMeter),
        "edge": ("edge", 1, edge_loss, partial(EdgeMeter, num_thresholds=edge_thresholds, max_dist=edge_max_dist)),
    }[name]
    return TaskSpec(name=name, kind=kind, out_channels=out_channels, dense=True, loss=loss, meter=meter)


def build_tasks(
    names: Sequence[str],
    *,
    loss_weights: Mapping[str, float],
    edge_thresholds: int,
    edge_max_dist: float,
) -> dict[str, TaskSpec]:
    """TaskSpecs of the selected tasks in canonical order, losses scaled by ``loss_weights`` (default 1)."""
    specs = {}
    for name in (n for n in TASK_NAMES if n in names):
        spec = _spec(name, edge_thresholds=edge_thresholds, edge_max_dist=edge_max_dist)
        weight = loss_weights.get(name, 1.0)
        if weight != 1.0:
            spec = attrs.evolve(spec, loss=partial(scaled, loss=spec.loss, weight=weight))
        specs[name] = spec
    return specs


def primary_metrics(sal_primary: str) -> dict[str, str]:
    """Task -> the one metric that enters Delta_m."""
    return {"semseg": "miou", "parts": "miou", "normals": "mean", "sal": sal_primary, "edge": "odsf"}
