"""Fixture writers for the MTAN ``.npy`` release format (datasets spec, section 8).

Used by the tests of the dense dataset plugins and by the loader benchmark;
sizes are free, everything else (names, ranks, dtypes, ignore values) is the
real format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["write_npy_release"]


def write_npy_release(root: Path, split: str, fields: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write ``root/<split>/<field>/<i>.npy`` for every array of every field."""
    for directory, arrays in fields.items():
        target = Path(root) / split / directory
        target.mkdir(parents=True, exist_ok=True)
        for index, array in enumerate(arrays):
            np.save(target / f"{index}.npy", array)
