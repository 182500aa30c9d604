"""Base of the mtlx datasets stored as an MTAN ``.npy`` release (NYUv2, Cityscapes).

It owns what they share: locating the root (``--data-root`` or
``$MTLX_DATA/<name>``, with a message naming the layout and the public
release when missing), opening each split once (checked on open, see
:mod:`.release`), the input shape, and the stored single-task baseline that
``-o dataset.baseline=...`` selects. Subclasses declare files and tasks.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from mtlx import ConfigError, DataError, Dataset
from mtlx.data import resolve_root

from .conventions import StoredBaseline
from .release import Field, NpyReleaseSplit

__all__ = ["NpyReleaseDataset"]


class NpyReleaseDataset(Dataset):
    """A dataset whose splits are directories of an MTAN ``.npy`` release.

    The releases ship ``train/`` and ``val/``, and ``val/`` is the test set
    the literature reports on; there is no separate validation split. So the
    splits are ``train`` and ``test`` (read from ``val/``), and the engine
    selects models on ``test``, as LibMTL does without a validation set.

    Class attributes of subclasses: ``name`` (registry name, also the
    ``$MTLX_DATA`` subdirectory), ``expected`` and ``source`` (shown when the
    data is missing), ``baselines`` (``-o dataset.baseline`` choices). Their
    ``Config`` derives from :class:`~.conventions.DenseOptions` and has ``baseline``.
    """

    name: ClassVar[str]
    expected: ClassVar[str]
    source: ClassVar[str]
    baselines: ClassVar[Mapping[str, StoredBaseline]] = {}
    #: split name -> directory of the release.
    disk_splits: ClassVar[Mapping[str, str]] = {"train": "train", "test": "val"}

    def __init__(self, config: Any, root: str | Path | None):
        self.config = config
        self.root = resolve_root(root, self.name, expected=self.expected, source=self.source)
        self._opened: dict[str, NpyReleaseSplit] = {}

    @property
    @abstractmethod
    def fields(self) -> Mapping[str, Field]:
        """Sample key -> directory spec; the first key is the input image, the others are task names."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        size = self.config.resolution or self.split("train").native_size
        return (3, *size)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.disk_splits)

    def split(self, name: str) -> NpyReleaseSplit:
        """``train`` (augmented when ``augment`` is on) or ``test`` (the release's ``val/``)."""
        if name not in self.disk_splits:
            raise ConfigError(
                f"{self.name} has no split {name!r}; its splits are {', '.join(self.disk_splits)} "
                "(the release's val/ directory is the test set; there is no separate validation split)"
            )
        disk = self.disk_splits[name]
        if disk not in self._opened:
            opened = NpyReleaseSplit(
                self.root / disk,
                self.fields,
                what=self.name,
                size=self.config.resolution,
                augment=self.config.augment and name == "train",
                scales=self.config.scales,
            )
            if name != "train" and self.config.resolution is None:
                train = self.split("train").native_size
                if opened.native_size != train:
                    raise DataError(
                        f"{self.name}: {self.root / disk} holds {opened.native_size[0]}x{opened.native_size[1]} "
                        f"images but {self.root / 'train'} holds {train[0]}x{train[1]} (two releases mixed?); "
                        "fix the data or resample both with -o dataset.resolution=[H,W]"
                    )
            self._opened[disk] = opened
        return self._opened[disk]

    def baseline(self) -> Mapping[str, Mapping[str, float]] | None:
        """The selected STL table in meter units (fractions, not percent), or None for ``baseline=none``.

        Each table was computed with one ``metric_aggregation``; compare runs
        that use the same one (see :class:`~.conventions.StoredBaseline`).
        """
        if self.config.baseline == "none":
            return None
        return self.baselines[self.config.baseline].in_meter_units()
