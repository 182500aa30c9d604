"""pytest fixtures that plugin test suites share.

Import the ones you need into a ``conftest.py`` (pytest collects fixtures
from the conftest's namespace; autouse ones then apply to every test below it)::

    from mtlx.testing.fixtures import mtlx_cli, single_thread  # noqa: F401  (pytest fixtures)

This module imports pytest, so :mod:`mtlx.testing` does not import it; pytest comes with the
``test`` extra (``pip install 'mtlx[test]'``), which a plugin's own ``test`` extra lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

try:
    import pytest
except ImportError:  # mtlx itself does not depend on pytest: say which extra brings it
    raise ImportError(
        "mtlx.testing.fixtures are pytest fixtures and need pytest: pip install 'mtlx[test]'"
    ) from None
from click.testing import Result

from ..threads import torch_threads
from .cli import invoke_cli

__all__ = ["mtlx_cli", "single_thread"]


@pytest.fixture
def mtlx_cli() -> Callable[..., Result]:
    """:func:`~mtlx.testing.invoke_cli`: ``mtlx_cli("run", "-d", "toy", ...)`` runs the CLI in-process."""
    return invoke_cli


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op torch thread for each test (restored after it).

    Test models are tiny: on a shared CPU, extra intra-op threads only
    spin-wait and make small ops many times slower.
    """
    with torch_threads(1):
        yield
