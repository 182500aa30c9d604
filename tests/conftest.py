"""Core test fixtures: a fresh plugin manager per test, the toy plugin, a CLI runner."""

from __future__ import annotations

import pytest

from mtlx.testing import invoke_cli
from mtlx.testing.fixtures import fresh_plugin_manager  # noqa: F401  (autouse pytest fixture)


@pytest.fixture
def cli():
    """Invoke ``mtlx`` with the toy plugin loaded: ``cli("run", "-d", "toy", ...)``."""

    def invoke(*args: str, toy: bool = True):
        prefix = ["--plugin", "mtlx.testing.plugin"] if toy else []
        return invoke_cli(*prefix, *args)

    return invoke
