"""Fixtures: tiny Cityscapes (.npy release) and GTA5 (PNG) trees in their exact formats, a fresh plugin manager, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from mtlx.plugins import reset_plugin_manager
from mtlx_cityscapes.testing import write_cityscapes, write_gta5


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    """4 train and 2 val samples of 32x64 with label_2, label_7, label_19 and a LibMTL-style label -> label_7 link."""
    return write_cityscapes(tmp_path / "cityscapes", n_train=4, n_val=2, size=(32, 64), seed=0, libmtl_label_link=True)


@pytest.fixture
def gta5_root(tmp_path: Path) -> Path:
    """3 GTA5 frames of 32x64 with palettised label-id PNGs."""
    return write_gta5(tmp_path / "gta5", n=3, size=(32, 64), seed=0)


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    """Every test sees the installed plugins afresh (the CLI caches a process-wide manager)."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def mtlx_cli():
    """``mtlx_cli("run", ...)`` invokes the real CLI in-process; returns click's Result."""
    from mtlx.cli import main

    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
