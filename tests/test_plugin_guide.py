"""docs/plugin-guide.md: every Python block runs, in order, in one namespace (what a reader copies works)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[1] / "docs" / "plugin-guide.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), flags=re.S | re.M)


def test_the_guide_has_a_block_per_section():
    assert len(_blocks()) >= 7


def test_every_python_block_of_the_guide_runs(monkeypatch):
    pytest.importorskip("mtlx_archs", reason="the guide's model uses the hps architecture of mtlx-archs")
    monkeypatch.setenv("MTLX_DATA", "")  # the guide sets it for its data; the monkeypatch restores it after
    namespace: dict = {"__name__": "plugin_guide"}
    try:
        for number, block in enumerate(_blocks(), start=1):
            try:
                exec(compile(block, f"{GUIDE.name} block {number}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"block {number} of the guide fails: {type(error).__name__}: {error}") from error
    finally:
        sys.modules.pop("guide_plugin", None)
