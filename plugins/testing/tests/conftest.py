"""Imports the shared fixtures the way plugin conftests do."""

from mtlx_testing.fixtures import mtlx_cli, single_thread  # noqa: F401  (pytest fixtures)
