"""Fixtures: a tiny NYUv2 release in the exact on-disk format (in tmp_path), a fresh plugin manager, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from mtlx.plugins import reset_plugin_manager
from mtlx_nyuv2.testing import write_nyuv2


@pytest.fixture
def nyuv2_root(tmp_path: Path) -> Path:
    """4 train and 2 val samples of 32x64 (train/ and val/ with image, label, depth, normal)."""
    return write_nyuv2(tmp_path / "nyuv2", n_train=4, n_val=2, size=(32, 64), seed=0)


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
