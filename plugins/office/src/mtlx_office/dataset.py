"""Office-31 and Office-Home in LibMTL's multi-input setup: each domain is a task with its own images.

The data root holds the images (``amazon/images/<class>/<file>.jpg``,
``Art/<Class>/<file>.jpg``) and LibMTL's list files under
``data_txt/<dataset>/<domain>_{train,val,test}.txt``, which fix the splits
and the labels (not alphabetical: always read from the file). A sample is
``(image, label)``; the engine zips the domains' loaders so that a batch is
``({domain: images}, {domain: labels})`` and encodes each domain's images
separately.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import torch

from mtlx import ConfigError, DataError, Dataset, TaskSpec
from mtlx.data import resolve_root
from mtlx.errors import did_you_mean
from mtlx.losses import classification_loss
from mtlx.metrics import AccuracyMeter

from .images import load_image
from .listfile import ListEntry, read_list_file

__all__ = ["Office31", "OfficeDataset", "OfficeHome"]

_SPLITS = ("train", "val", "test")
_LIST_SOURCE = "LibMTL's repository, examples/office/data_txt/ (copy it to <data root>/data_txt/)"


def _task_tuple(value: Any) -> tuple[str, ...] | None:
    """Accept ``"amazon,webcam"`` (``-o dataset.tasks=amazon,webcam``) or a list; None = all domains."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    return tuple(value)


class _DomainSplit(torch.utils.data.Dataset):
    """The images of one domain and split; a sample is ``(image [3, s, s], label)``."""

    def __init__(self, root: Path, entries: list[ListEntry], size: int):
        self.root, self.entries, self.size = root, entries, size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        entry = self.entries[index]
        return load_image(self.root / entry.path, self.size, entry.where), entry.label


class OfficeDataset(Dataset):
    """Base of the Office datasets: subclasses set the name, domains, class count and STL accuracies."""

    name: ClassVar[str]
    domains: ClassVar[tuple[str, ...]]
    num_classes: ClassVar[int]
    #: Single-task test accuracy (fractions, as AccuracyMeter reports) of ResNet-18 (Rep-MTL paper).
    stl_accuracy: ClassVar[Mapping[str, float]]
    layout: ClassVar[str]

    multi_input = True
    recommended = {
        "arch.name": "hps",
        "backbone.name": "resnet18",
        "head.name": "linear",
        "train.batch_size": 64,
        "train.drop_last": True,
        "train.optimizer": "adam",
        "train.lr": 1e-4,
        "train.weight_decay": 1e-5,
    }
    # LibMTL's office example: 100 epochs, batch 64 (last incomplete batch dropped), Adam 1e-4, weight decay 1e-5;
    # the Rep-MTL paper trains every method with the log loss transform (its Appendix A).
    presets = {"paper": {"train.epochs": 100, "train.loss_transform": "log"}}

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o dataset.KEY=VALUE``.

        Attributes:
            tasks: domains to train on (default all); one domain gives a single-task baseline.
            image_size: side of the square the images are resized to (224 in LibMTL).
            list_dir: folder of the ``<domain>_<split>.txt`` files; default ``<root>/data_txt/<dataset>``.
        """

        tasks: tuple[str, ...] | None = attrs.field(default=None, converter=_task_tuple)
        image_size: int = attrs.field(
            default=224, validator=[attrs.validators.instance_of(int), attrs.validators.ge(8)]
        )
        list_dir: str | None = None

    def __init__(self, config: Any = None, root: str | os.PathLike[str] | None = None):
        self.config = config if config is not None else self.Config()
        tasks = self.config.tasks or self.domains
        for task in tasks:
            if task not in self.domains:
                raise ConfigError(
                    f"dataset {self.name} has no domain {task!r}{did_you_mean(task, self.domains)} "
                    f"(domains: {', '.join(self.domains)})"
                )
        self._task_names = tuple(tasks)
        self.root = resolve_root(
            root,
            self.name,
            expected=f"{self.layout} plus the list files data_txt/{self.name}/<domain>_{{train,val,test}}.txt",
            source=f"the {self.name} images from the dataset's authors; the list files from {_LIST_SOURCE}",
        )
        self.list_dir = Path(self.config.list_dir) if self.config.list_dir else self.root / "data_txt" / self.name

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return {
            name: TaskSpec(
                name=name,
                kind="classification",
                out_channels=self.num_classes,
                dense=False,
                loss=classification_loss,
                meter=AccuracyMeter,
            )
            for name in self._task_names
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.config.image_size, self.config.image_size)

    @property
    def splits(self) -> tuple[str, ...]:
        return _SPLITS

    def entries(self, name: str, task: str) -> list[ListEntry]:
        """The checked list of split ``name`` of domain ``task`` (every image must exist)."""
        if name not in _SPLITS:
            raise ConfigError(
                f"dataset {self.name} has no split {name!r}{did_you_mean(name, _SPLITS)} (splits: train, val, test)"
            )
        list_file = self.list_dir / f"{task}_{name}.txt"
        if not list_file.is_file():
            raise DataError(
                f"dataset {self.name}: list file {list_file} does not exist; the list files come from {_LIST_SOURCE}"
            )
        entries = read_list_file(list_file, self.num_classes)
        for entry in entries:
            if not (self.root / entry.path).is_file():
                raise DataError(f"{entry.where}: image {self.root / entry.path} does not exist")
        return entries

    def split(self, name: str) -> Mapping[str, torch.utils.data.Dataset]:
        return {
            task: _DomainSplit(self.root, self.entries(name, task), self.config.image_size) for task in self._task_names
        }

    def baseline(self) -> Mapping[str, Mapping[str, float]]:
        return {task: {"acc": self.stl_accuracy[task]} for task in self._task_names}


class Office31(OfficeDataset):
    """Office-31: 31 object classes in 3 domains (Amazon product shots, DSLR and webcam photos)."""

    name = "office-31"
    domains = ("amazon", "dslr", "webcam")
    num_classes = 31
    stl_accuracy = {"amazon": 0.8661, "dslr": 0.9563, "webcam": 0.9685}
    layout = "<root>/{amazon,dslr,webcam}/images/<class>/<file>.jpg"


class OfficeHome(OfficeDataset):
    """Office-Home: 65 object classes in 4 domains (Art, Clipart, Product, Real_World)."""

    name = "office-home"
    domains = ("Art", "Clipart", "Product", "Real_World")
    num_classes = 65
    stl_accuracy = {"Art": 0.6559, "Clipart": 0.7960, "Product": 0.9047, "Real_World": 0.8000}
    layout = "<root>/{Art,Clipart,Product,Real_World}/<Class>/<file>.jpg"
