"""Tiny fake Cityscapes (``.npy`` release) and GTA5 (PNG) datasets in their exact on-disk formats.

Used by this plugin's tests and by the loader benchmark (datasets spec, section 8).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from mtlx_dense import write_npy_release

__all__ = ["cityscapes_sample", "write_cityscapes", "write_gta5_frame"]


def _labels(rng: np.random.Generator, classes: int, height: int, width: int) -> np.ndarray:
    label = rng.integers(0, classes, size=(height, width)).astype(np.float32)
    label[rng.random((height, width)) < 0.05] = -1.0
    return label


def cityscapes_sample(rng: np.random.Generator, height: int, width: int) -> dict[str, np.ndarray]:
    """One sample as the release stores it: float images and labels (-1 ignore), disparity with zeros."""
    depth = rng.uniform(0.0, 0.5, size=(height, width, 1)).astype(np.float32)
    depth[rng.random((height, width, 1)) < 0.1] = 0.0
    return {
        "image": rng.uniform(0.0, 1.0, size=(height, width, 3)).astype(np.float32),
        "label_2": _labels(rng, 2, height, width),
        "label_7": _labels(rng, 7, height, width),
        "label_19": _labels(rng, 19, height, width),
        "depth": depth,
    }


def write_cityscapes(
    root: Path,
    *,
    n_train: int = 4,
    n_val: int = 2,
    size: tuple[int, int] = (32, 64),
    seed: int = 0,
    libmtl_label_link: bool = False,
) -> Path:
    """A fake Cityscapes release under ``root``; ``libmtl_label_link`` adds ``label -> label_7`` as LibMTL expects."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        samples = [cityscapes_sample(rng, *size) for _ in range(count)]
        write_npy_release(root, split, {key: [s[key] for s in samples] for key in samples[0]})
        if libmtl_label_link:
            os.symlink("label_7", Path(root) / split / "label")
    return Path(root)


def _palette() -> list[int]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=256 * 3).tolist()


def write_gta5_frame(
    root: Path,
    number: int,
    label_ids: np.ndarray,
    *,
    image_size: tuple[int, int] | None = None,
    image: np.ndarray | None = None,
    train_ids: np.ndarray | None = None,
    seed: int = 0,
) -> None:
    """Write ``images/NNNNN.png`` (RGB) and ``labels/NNNNN.png`` (mode 'P', label ids) for one frame.

    The image is ``image`` (uint8 H x W x 3) or random pixels of ``image_size``
    (height, width; default the label's); ``train_ids`` also writes
    ``labels/NNNNN_labelTrainIds.png`` (mode 'L').
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    if image is None:
        height, width = image_size or label_ids.shape
        image = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "images" / f"{number:05d}.png")
    label = Image.frombytes("P", (label_ids.shape[1], label_ids.shape[0]), label_ids.astype(np.uint8).tobytes())
    label.putpalette(_palette())
    label.save(root / "labels" / f"{number:05d}.png")
    if train_ids is not None:
        Image.fromarray(train_ids.astype(np.uint8), "L").save(root / "labels" / f"{number:05d}_labelTrainIds.png")

