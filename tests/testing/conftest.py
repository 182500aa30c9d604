"""Imports the shared fixtures the way plugin conftests do (``fresh_plugin_manager`` comes from tests/conftest.py)."""

from mtlx.testing.fixtures import mtlx_cli, single_thread  # noqa: F401  (pytest fixtures)
