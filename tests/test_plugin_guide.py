"""docs/plugin-guide.md: every Python block runs, in order, in one namespace (what a reader copies works)."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[1] / "docs" / "plugin-guide.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), flags=re.DOTALL | re.MULTILINE)


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


def _results_table() -> dict[str, str]:
    """``{field: when}`` from the guide's table of results.json fields."""
    table = GUIDE.read_text().partition("`results.json` holds exactly these fields")[2].partition("\n\n")[2]
    rows = [line.split("|")[1:3] for line in table.partition("\n\n")[0].splitlines()[2:]]
    return {name: when.strip() for names, when in rows for name in re.findall(r"`(\w+)`", names)}


def test_the_guides_results_json_fields_are_a_runs(tmp_path):
    from mtlx_testing import invoke_cli

    documented = _results_table()
    assert "best" in documented and documented["dataset"] == "always"
    result = invoke_cli("--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "toy-weighted", "--epochs", "2",
                        "--threads", "1", "-q", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    written = set(json.loads((tmp_path / "run" / "results.json").read_text()))
    always = {name for name, when in documented.items() if when == "always"}
    with_test = {name for name, when in documented.items() if when == "with a test split"}  # toy has one
    assert always | with_test <= written <= set(documented), (sorted(written - set(documented)),
                                                              sorted(always | with_test - written))


def test_the_guides_pyproject_is_a_buildable_plugin_package():
    blocks = re.findall(r"^```toml\n(.*?)^```", GUIDE.read_text(), flags=re.DOTALL | re.MULTILINE)
    (pyproject,) = [tomllib.loads(block) for block in blocks if "[project.entry-points.mtlx]" in block]
    assert pyproject["build-system"] == {"requires": ["setuptools>=68"], "build-backend": "setuptools.build_meta"}
    assert pyproject["project"]["name"] and pyproject["project"]["version"]
    assert pyproject["project"]["entry-points"] == {"mtlx": {"sums": "mtlx_sums.plugin"}}
    assert "mtlx-testing" in pyproject["project"]["optional-dependencies"]["test"]  # the kit: checks, fixtures
