"""Fixtures: tiny Cityscapes (.npy release) and GTA5 (PNG) trees in their exact formats; from mtlx: the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtlx_cityscapes.testing import write_cityscapes, write_gta5_frame
from mtlx_testing.fixtures import mtlx_cli  # noqa: F401  (pytest fixture)

#: Label ids written into the fake GTA5 labels: mapped ones (7 road, 26 car, 33 bicycle) and unmapped ones.
GTA5_FIXTURE_IDS = (0, 4, 7, 14, 26, 33, 34)


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    """4 train and 2 val samples of 32x64 with label_2, label_7, label_19 and a LibMTL-style label -> label_7 link."""
    return write_cityscapes(tmp_path / "cityscapes", n_train=4, n_val=2, size=(32, 64), seed=0, libmtl_label_link=True)


@pytest.fixture
def gta5_root(tmp_path: Path) -> Path:
    """3 GTA5 frames of 32x64 with palettised label-id PNGs."""
    root, rng = tmp_path / "gta5", np.random.default_rng(0)
    for number in range(1, 4):
        write_gta5_frame(root, number, rng.choice(GTA5_FIXTURE_IDS, size=(32, 64)).astype(np.uint8), seed=number)
    return root
