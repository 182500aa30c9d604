"""GTA5 -> Cityscapes domain shift: train on GTA5 frames, test on Cityscapes val (19 classes).

GTA5 ('Playing for Data', datasets spec section 4) ships ``images/00001.png``
... ``24966.png`` (RGB, mostly 1914x1052) and ``labels/`` with the same names:
palettised PNGs whose indices are Cityscapes *label ids*, mapped here to the
19 train ids. Pipelines such as mmseg's converter write
``labels/00001_labelTrainIds.png`` (train ids, 255 ignore) instead; each
frame uses that file when present. As in domain-adaptation work, all frames
are training data, and the test set is the Cityscapes val split of the
MTAN ``.npy`` release (``label_19``), read from ``dataset.cityscapes_root``.

Frames are brought to the Cityscapes resolution by an aspect-preserving
resize that covers the target and a centred crop (bilinear image, nearest
label); a label whose size differs from its image is first resized to it.
Ignored pixels (255) become -1 like every other target of mtlx's dense datasets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import torch
import torch.utils.data
from PIL import Image

from mtlx import Dataset, TaskSpec
from mtlx.data import DATA_ENV, resolve_root
from mtlx.errors import ConfigError, DataError
from mtlx_dense import (
    IGNORE_LABEL,
    NpyReleaseSplit,
    RandomScaleCropFlip,
    SceneOptions,
    dense_recommended,
    segmentation_task,
)

from .cityscapes import IMAGE_FIELD, label_field
from .cityscapes import SOURCE as CITYSCAPES_SOURCE
from .labels import IGNORE_TRAIN_ID, TRAIN_CLASSES, to_train_ids

__all__ = ["GTA5", "TRAIN_ID_SUFFIX", "Frame", "GTA5Frames", "scan_frames"]

TRAIN_ID_SUFFIX = "_labelTrainIds.png"
_IMAGE_NAME = re.compile(r"^(\d{5})\.png$")
_LABEL_NAME = re.compile(r"^(\d{5})(_labelTrainIds)?\.png$")

EXPECTED = (
    "<root>/images/00001.png ... 24966.png (RGB frames) and <root>/labels/00001.png ... (palettised PNGs of "
    "Cityscapes label ids 0-33) or labels/00001_labelTrainIds.png (train ids 0-18, 255 = ignore)"
)
SOURCE = (
    "'Playing for Data' (Richter et al., ECCV 2016): https://download.visinf.tu-darmstadt.de/data/from_games/ "
    "(10 image zips and 10 label zips; extract them all into images/ and labels/)"
)
CITYSCAPES_EXPECTED = (
    "<cityscapes root>/val/{image,label_19}/<i>.npy (the MTAN .npy release; the 500 val images are the test set)"
)


@attrs.frozen
class Frame:
    """One GTA5 frame: its image, its label file, and whether the label already holds train ids."""

    image: Path
    label: Path
    train_ids: bool


def scan_frames(root: Path) -> list[Frame]:
    """Pair every ``images/NNNNN.png`` with its label; DataError naming the first inconsistent file."""
    images, labels = root / "images", root / "labels"
    for directory in (images, labels):
        if not directory.is_dir():
            raise DataError(
                f"gta5: directory {directory} is missing. Expected layout: {EXPECTED}. Get it from: {SOURCE}"
            )
    label_names = set(os.listdir(labels))
    frames, stems = [], set()
    for name in sorted(os.listdir(images)):
        if not name.endswith(".png"):
            continue
        match = _IMAGE_NAME.match(name)
        if match is None:
            raise DataError(f"gta5: {images / name}: unexpected file name; frames are named 00001.png ... 24966.png")
        stem = match.group(1)
        stems.add(stem)
        if stem + TRAIN_ID_SUFFIX in label_names:
            frames.append(Frame(images / name, labels / (stem + TRAIN_ID_SUFFIX), True))
        elif name in label_names:
            frames.append(Frame(images / name, labels / name, False))
        else:
            raise DataError(
                f"gta5: {labels / name} is missing (the label of {images / name}); expected "
                f"labels/{name} (label ids) or labels/{stem}{TRAIN_ID_SUFFIX} (train ids)"
            )
    if not frames:
        raise DataError(f"gta5: empty split: {images} holds no .png frames. Expected layout: {EXPECTED}")
    for name in sorted(label_names):
        match = _LABEL_NAME.match(name)
        if match is not None and match.group(1) not in stems:
            raise DataError(
                f"gta5: {labels / name} has no image {images / (match.group(1) + '.png')} "
                "(a partly extracted release? extract every image zip)"
            )
    return frames


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"gta5: cannot read {path}: {error}") from None
    return image


def _cover_box(width: int, height: int, target_h: int, target_w: int) -> tuple[float, float, float, float]:
    """The centred window of a ``width x height`` frame with the target's aspect ratio."""
    aspect = target_w / target_h
    if width / height > aspect:
        crop = height * aspect
        return ((width - crop) / 2, 0.0, (width + crop) / 2, float(height))
    crop = width / aspect
    return (0.0, (height - crop) / 2, float(width), (height + crop) / 2)


def _train_ids(label: Image.Image, frame: Frame) -> np.ndarray:
    if label.mode not in ("P", "L"):
        raise DataError(
            f"gta5: {frame.label}: image mode {label.mode!r}; expected a palettised ('P') or greyscale ('L') "
            "PNG of class ids (colour-coded labels cannot be read)"
        )
    ids = np.asarray(label)
    if not frame.train_ids:
        return to_train_ids(ids)
    bad = (ids > len(TRAIN_CLASSES) - 1) & (ids != IGNORE_TRAIN_ID)
    if bad.any():
        raise DataError(
            f"gta5: {frame.label}: train ids must be 0..{len(TRAIN_CLASSES) - 1} or {IGNORE_TRAIN_ID}, "
            f"found {sorted(set(np.unique(ids[bad]).tolist()))[:5]}"
        )
    return ids


class GTA5Frames(torch.utils.data.Dataset):
    """GTA5 frames at ``size`` as samples ``(image [3,H,W] float32 in [0,1], {"segmentation": [H,W] int64})``."""

    def __init__(self, root: Path, size: tuple[int, int], *, augment: bool = False, scales=(1.0, 1.2, 1.5)):
        self.frames = scan_frames(Path(root))
        self.size = (int(size[0]), int(size[1]))
        self.augment = RandomScaleCropFlip(scales) if augment else None

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        """Frame ``index`` at ``size``: cover-resize + centre crop, label ids mapped to train ids, 255 -> -1."""
        frame = self.frames[index]
        image, label = _open(frame.image), _open(frame.label)
        if image.mode != "RGB":
            image = image.convert("RGB")
        if label.size != image.size:
            label = label.resize(image.size, Image.NEAREST)
        height, width = self.size
        box = _cover_box(*image.size, height, width)
        image = image.resize((width, height), Image.BILINEAR, box=box)
        label = label.resize((width, height), Image.NEAREST, box=box)
        ids = torch.from_numpy(_train_ids(label, frame).astype(np.int64))
        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        return {
            "image": pixels.float().div_(255.0).contiguous(),
            "segmentation": ids.masked_fill_(ids == IGNORE_TRAIN_ID, IGNORE_LABEL),
        }

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sample = self.load(index)
        if self.augment is not None:
            sample = self.augment(sample, {"image": "image", "segmentation": "segmentation"})
        return sample.pop("image"), sample

    def state_dict(self) -> dict[str, Any]:
        return self.augment.state_dict() if self.augment is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.augment is not None:
            self.augment.load_state_dict(state)


class GTA5(Dataset):
    """GTA5 -> Cityscapes: train on GTA5 frames, test on Cityscapes val (19 classes)."""

    @attrs.frozen(kw_only=True)
    class Config(SceneOptions):
        """GTA5 options; ``resolution`` defaults to that of the Cityscapes release used for testing.

        Attributes:
            cityscapes_root: the Cityscapes ``.npy`` release (default ``$MTLX_DATA/cityscapes``).
        """

        cityscapes_root: str | None = None

    recommended: ClassVar[Mapping[str, Any]] = dense_recommended(batch_size=8)

    def __init__(self, config: Config, root: str | Path | None):
        self.config = config
        self.root = resolve_root(root, "gta5", expected=EXPECTED, source=SOURCE)
        if config.cityscapes_root is None and not os.environ.get(DATA_ENV):
            raise DataError(
                "gta5 is tested on Cityscapes val: pass -o dataset.cityscapes_root=PATH or set "
                f"{DATA_ENV} (then {DATA_ENV}/cityscapes is used). Expected layout: {CITYSCAPES_EXPECTED}. "
                f"Get the data from: {CITYSCAPES_SOURCE}"
            )
        given = Path(config.cityscapes_root).expanduser() if config.cityscapes_root is not None else None
        self.cityscapes_root = resolve_root(given, "cityscapes", expected=CITYSCAPES_EXPECTED, source=CITYSCAPES_SOURCE)
        self._tasks = {"segmentation": segmentation_task(len(TRAIN_CLASSES), config.absent_classes)}
        self._opened: dict[str, torch.utils.data.Dataset] = {}

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return self._tasks

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, *self._size())

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "test")

    def _size(self) -> tuple[int, int]:
        return self.config.resolution or self.split("test").native_size

    def split(self, name: str) -> torch.utils.data.Dataset:
        """``train``: every GTA5 frame; ``test``: Cityscapes val with 19 classes."""
        if name not in self.splits:
            raise ConfigError(f"gta5 has no split {name!r}; its splits are train (GTA5) and test (Cityscapes val)")
        if name not in self._opened:
            if name == "test":
                self._opened[name] = NpyReleaseSplit(
                    self.cityscapes_root / "val",
                    {"image": IMAGE_FIELD, "segmentation": label_field(len(TRAIN_CLASSES))},
                    what="gta5 (Cityscapes val)",
                    size=self.config.resolution,
                )
            else:
                self._opened[name] = GTA5Frames(
                    self.root, self._size(), augment=self.config.augment, scales=self.config.scales
                )
        return self._opened[name]
