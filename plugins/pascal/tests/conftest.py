"""Fixtures: the PASCAL_MT fixture tree of :mod:`mtlx_pascal.testing` written to ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from mtlx_pascal import testing


@attrs.frozen
class PascalFixture:
    """The written tree and its ids."""

    root: Path
    train_ids: tuple[str, ...] = testing.TRAIN_IDS
    val_ids: tuple[str, ...] = testing.VAL_IDS

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


@pytest.fixture
def pascal(tmp_path: Path) -> PascalFixture:
    """The fixture tree in ``tmp_path/PASCAL_MT`` (6 images of 40x48)."""
    return PascalFixture(root=testing.write_pascal(tmp_path / "PASCAL_MT"))
