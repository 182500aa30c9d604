"""Shared fixtures of the baselines tests: one intra-op thread per test (tiny ops on a shared CPU)."""

from __future__ import annotations

from mtlx.testing.fixtures import single_thread  # noqa: F401  (autouse pytest fixture)
