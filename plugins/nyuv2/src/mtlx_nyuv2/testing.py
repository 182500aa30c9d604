"""Tiny fake datasets in the exact on-disk format of the MTAN ``.npy`` releases (datasets spec, section 8).

Used by the tests of this plugin and of mtlx-cityscapes and by the loader
benchmark; sizes are free, everything else (names, ranks, dtypes, ignore
values) is the real format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["nyuv2_sample", "random_unit_normals", "write_npy_release", "write_nyuv2"]


def write_npy_release(root: Path, split: str, fields: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write ``root/<split>/<field>/<i>.npy`` for every array of every field."""
    for directory, arrays in fields.items():
        target = Path(root) / split / directory
        target.mkdir(parents=True, exist_ok=True)
        for index, array in enumerate(arrays):
            np.save(target / f"{index}.npy", array)


def random_unit_normals(rng: np.random.Generator, height: int, width: int, invalid: float = 0.05) -> np.ndarray:
    """``H x W x 3`` float32 unit vectors with about ``invalid`` of the pixels all-zero."""
    normal = rng.normal(size=(height, width, 3))
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal[rng.random((height, width)) < invalid] = 0.0
    return normal.astype(np.float32)


def nyuv2_sample(rng: np.random.Generator, height: int, width: int) -> dict[str, np.ndarray]:
    """One NYUv2 sample as the release stores it (float64 image and label, float32 depth and normals)."""
    label = rng.integers(0, 13, size=(height, width)).astype(np.float64)
    label[rng.random((height, width)) < 0.05] = -1.0
    depth = rng.uniform(0.5, 10.0, size=(height, width, 1)).astype(np.float32)
    depth[rng.random((height, width, 1)) < 0.05] = 0.0
    return {
        "image": rng.uniform(0.0, 1.0, size=(height, width, 3)),
        "label": label,
        "depth": depth,
        "normal": random_unit_normals(rng, height, width),
    }


def write_nyuv2(
    root: Path, *, n_train: int = 4, n_val: int = 2, size: tuple[int, int] = (32, 64), seed: int = 0
) -> Path:
    """A fake NYUv2 release under ``root`` (``train/`` and ``val/``); returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        samples = [nyuv2_sample(rng, *size) for _ in range(count)]
        write_npy_release(
            root, split, {key: [s[key] for s in samples] for key in ("image", "label", "depth", "normal")}
        )
    return Path(root)
