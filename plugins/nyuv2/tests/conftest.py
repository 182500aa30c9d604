"""Fixtures: a tiny NYUv2 release in the exact on-disk format (in tmp_path); from mtlx: the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlx_nyuv2.testing import write_nyuv2
from mtlx_testing.fixtures import mtlx_cli  # noqa: F401  (pytest fixture)


@pytest.fixture
def nyuv2_root(tmp_path: Path) -> Path:
    """4 train and 2 val samples of 32x64 (train/ and val/ with image, label, depth, normal)."""
    return write_nyuv2(tmp_path / "nyuv2", n_train=4, n_val=2, size=(32, 64), seed=0)
