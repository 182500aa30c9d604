"""Core test fixtures: a fresh plugin manager per test, the toy plugin, a CLI runner."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mtlx.plugins import reset_plugin_manager


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    """Every test starts with no cached plugin manager (and leaves none behind)."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def cli():
    """Invoke ``mtlx`` with the toy plugin loaded: ``cli("run", "-d", "toy", ...)``."""
    from mtlx.cli import main

    runner = CliRunner()

    def invoke(*args: str, toy: bool = True):
        prefix = ["--plugin", "mtlx.testing.plugin"] if toy else []
        return runner.invoke(main, [*prefix, *args], catch_exceptions=False)

    return invoke
