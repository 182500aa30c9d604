"""pytest fixtures that plugin test suites share.

Import the ones you need into a ``conftest.py`` (pytest collects fixtures
from the conftest's namespace; autouse ones then apply to every test below it)::

    from mtlx_testing.fixtures import mtlx_cli, single_thread  # noqa: F401  (pytest fixtures)

This module imports pytest, so :mod:`mtlx_testing` does not import it; ``mtlx-testing`` depends on pytest,
and a plugin's own ``test`` extra lists ``mtlx-testing``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

try:
    import pytest
except ImportError:  # installed without its dependencies (pip --no-deps): say what brings pytest
    raise ImportError("mtlx_testing.fixtures are pytest fixtures and need pytest: pip install mtlx-testing") from None
from click.testing import Result

from mtlx.threads import torch_threads

from .cli import invoke_cli

__all__ = ["mtlx_cli", "single_thread"]


@pytest.fixture
def mtlx_cli() -> Callable[..., Result]:
    """:func:`~mtlx_testing.invoke_cli`: ``mtlx_cli("run", "-d", "toy", ...)`` runs the CLI in-process."""
    return invoke_cli


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op torch thread for each test (restored after it).

    Test models are tiny: on a shared CPU, extra intra-op threads only
    spin-wait and make small ops many times slower.
    """
    with torch_threads(1):
        yield
