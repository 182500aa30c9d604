"""Fixture writers for the MTAN ``.npy`` release format (datasets spec, section 8).

Used by the tests of the dense dataset plugins and by the loader benchmark;
sizes are free, everything else (names, ranks, dtypes, ignore values) is the
real format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["random_unit_normals", "write_npy_release"]


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
