"""The ``pascal`` dataset: PASCAL-Context multi-task (ASTMT's PASCAL_MT), 5 tasks, any subset.

Splits: ``train`` (4998 images) and ``val`` (5105), which the literature
reports as its test set; there is no separate ``test`` split, so a run
evaluates (and reports) ``val``. Files come from ``--data-root`` or
``$MTLX_DATA/pascal``; nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs

from mtlx import Dataset, TaskSpec
from mtlx.data import resolve_root
from mtlx.errors import ConfigError, DataError, did_you_mean
from mtlx.interfaces import task_subset_field

from .layout import EXPECTED, SOURCE, Layout
from .samples import Augmentation, PascalSplit
from .tasks import PAPER_LOSS_WEIGHTS, TASK_NAMES, build_tasks, primary_metrics

__all__ = ["BASELINE_FILE", "PascalContext"]

#: Default location of stored single-task results, inside the data root.
BASELINE_FILE = "stl_baselines.json"

#: What both ``paper`` presets share (HPS, ASPP heads, Vandenhende et al.'s optimiser, loss weights and schedule).
_PAPER_TRAINING: Mapping[str, Any] = {
    "arch.name": "hps",
    "head.name": "deeplab-aspp",
    "dataset.loss_weights": dict(PAPER_LOSS_WEIGHTS),
    "train.optimizer": "adam",
    "train.lr": 1e-4,
    "train.weight_decay": 1e-4,
    "train.batch_size": 6,
    "train.epochs": 100,
    "train.scheduler": "cosine",
}


def _float_pair(value: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 < low <= high:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {tuple(value)}")
    return low, high


def _weights(value: Mapping[str, float] | None) -> dict[str, float]:
    weights = {str(k): float(v) for k, v in (value or {}).items()}
    for name, weight in weights.items():
        if name not in TASK_NAMES:
            raise ConfigError(
                f"dataset 'pascal': loss_weights names unknown task {name!r}{did_you_mean(name, TASK_NAMES)}"
            )
        if weight <= 0:
            raise ConfigError(f"dataset 'pascal': loss_weights.{name} must be > 0, got {weight}")
    return weights


class PascalContext(Dataset):
    """PASCAL-Context multi-task: semseg (21), human parts (7), normals, saliency, edges."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options (``-o dataset.<name>=...``).

        Attributes:
            tasks: subset of semseg, parts, normals, sal, edge (``semseg,parts,sal``).
            size: side of the square network input (the literature uses 512).
            augment: random flip, scale and rotation on the train split.
            scale_range, max_rotation: the augmentation ranges (0.75-1.25, ±20°).
            sal_primary: the saliency metric used in Delta_m (``miou``: MTI-Net; ``maxf``: InvPT).
            edge_thresholds, edge_max_dist: ODS-F thresholds (0.01..0.99) and match tolerance (x diagonal).
            loss_weights: fixed per-task loss factors, e.g. ``{edge=50.0}`` (default 1).
            limit: use only the first N ids of each split (smoke runs).
            baseline_file: single-task results JSON (default ``<data root>/stl_baselines.json``).
        """

        tasks: tuple[str, ...] = task_subset_field("pascal", TASK_NAMES)
        size: int = attrs.field(default=512, validator=attrs.validators.ge(8))
        augment: bool = True
        scale_range: tuple[float, float] = attrs.field(default=(0.75, 1.25), converter=_float_pair)
        max_rotation: float = attrs.field(default=20.0, validator=attrs.validators.ge(0.0))
        sal_primary: str = attrs.field(default="miou", validator=attrs.validators.in_(("miou", "maxf")))
        edge_thresholds: int = attrs.field(default=99, validator=attrs.validators.ge(1))
        edge_max_dist: float = attrs.field(default=0.0075, validator=attrs.validators.gt(0.0))
        loss_weights: dict[str, float] = attrs.field(factory=dict, converter=_weights)
        limit: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
        baseline_file: str | None = None

    #: ResNet-18 + DeepLab-v3 ASPP heads on HPS, the PASCAL-Context MTL baseline (the ``paper`` preset adds
    #: the dilation to output stride 8; it is not here so that ``--backbone X`` never inherits it).
    recommended: ClassVar[Mapping[str, Any]] = {
        "arch.name": "hps",
        "backbone.name": "resnet18",
        "head.name": "deeplab-aspp",
        "train.optimizer": "adam",
        "train.lr": 1e-4,
        "train.weight_decay": 1e-4,
        "train.batch_size": 8,
        "train.epochs": 60,
    }
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # Vandenhende et al. (TPAMI 2021) ResNet-18 multi-task baseline: batch 6, 100 epochs, Adam 1e-4,
        # fixed loss weights; their poly LR schedule is approximated by cosine.
        "paper": {
            **_PAPER_TRAINING,
            "backbone.name": "resnet18",
            "backbone.output_stride": 8,
            "dataset.sal_primary": "miou",
        },
        # The same with the dilated ResNet-50 of the ASTMT/MTI-Net ResNet-50 tables.
        "paper-r50": {**_PAPER_TRAINING, "backbone.name": "resnet50-dilated"},
    }

    def __init__(self, config: Config, root: str | Path | None):
        self.config = config
        self.layout = Layout(resolve_root(root, "pascal", expected=EXPECTED, source=SOURCE))
        self._tasks = build_tasks(
            config.tasks,
            loss_weights=config.loss_weights,
            edge_thresholds=config.edge_thresholds,
            edge_max_dist=config.edge_max_dist,
        )

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return self._tasks

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.config.size, self.config.size)

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "val")

    def split(self, name: str) -> PascalSplit:
        if name not in self.splits:
            raise ConfigError(
                f"dataset 'pascal' has no split {name!r}{did_you_mean(name, self.splits)} "
                f"(splits: train, val; val is the benchmark's test set)"
            )
        ids = self.layout.split_ids(name)[: self.config.limit]
        tasks = tuple(self._tasks)
        self.layout.check_files(ids, tasks, name)
        persons: frozenset[str] = frozenset()
        if "parts" in tasks:
            persons = frozenset(self.layout.person_ids(name, ids))
            if tasks == ("parts",):  # parts alone: only images with people (the reference loader's rule)
                ids = [i for i in ids if i in persons]
                if not ids:
                    raise DataError(f"PASCAL-Context {name} split under {self.layout.root} has no person images")
        augmentation = Augmentation(
            enabled=self.config.augment and name == "train",
            scale_range=self.config.scale_range,
            max_rotation=self.config.max_rotation,
        )
        return PascalSplit(
            self.layout, ids, tasks, size=self.config.size, augmentation=augmentation, person_ids=persons
        )

    def baseline(self) -> Mapping[str, Mapping[str, float]] | None:
        """Stored single-task results, one primary metric per selected task; None when no file is stored.

        The file maps ``{task: {metric: value}}`` (see the README for the
        commands that train and collect them).
        """
        path = Path(self.config.baseline_file) if self.config.baseline_file else self.layout.root / BASELINE_FILE
        if not path.is_file():
            if self.config.baseline_file:
                raise DataError(f"dataset 'pascal': baseline_file {path} does not exist")
            return None
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: single-task baselines are not valid JSON ({error})") from None
        primary = primary_metrics(self.config.sal_primary)
        out: dict[str, dict[str, float]] = {}
        for task in self._tasks:
            metric = primary[task]
            try:
                out[task] = {metric: float(stored[task][metric])}
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    f"{path}: no single-task value for {task}.{metric}; train it with "
                    f"`mtlx run --dataset pascal -o dataset.tasks={task} ...` and add it"
                ) from None
        return out
