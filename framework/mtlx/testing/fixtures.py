"""pytest fixtures that plugin test suites share.

Import the ones you need into a ``conftest.py`` (pytest collects fixtures
from the conftest's namespace; autouse ones then apply to every test below it)::

    from mtlx.testing.fixtures import fresh_plugin_manager, mtlx_cli  # noqa: F401  (pytest fixtures)

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

from ..hooks import reset_plugin_manager
from ..threads import torch_threads
from .cli import invoke_cli

__all__ = ["fresh_plugin_manager", "mtlx_cli", "single_thread"]


@pytest.fixture(autouse=True)
def fresh_plugin_manager() -> Iterator[None]:
    """Every test sees the installed plugins afresh and leaves no manager behind.

    The CLI and ``mtlx.get_plugin_manager()`` cache one process-wide manager,
    so without this a test would see what an earlier test registered or loaded.
    """
    reset_plugin_manager()
    yield
    reset_plugin_manager()


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
