"""Plugin errors that say what they are, with real distributions on sys.path (tests/hooks/conftest.py).

A name two plugins register stays usable through either owner; an unknown name points at the
plugins that failed to load and at entry points declared under a group mtlx does not read.
"""

from __future__ import annotations

import sys
import tomllib

import pytest

THIRD_EW = '''
import attrs, torch
import mtlx

BUILT = []


class ThirdEW(mtlx.LossWeighting):
    """A third party's "ew": every weight is ``scale``."""

    @attrs.frozen
    class Config:
        """Options.

        Attributes:
            scale: the weight of every task.
        """

        scale: float = 2.0

    def __init__(self, config, *, tasks):
        super().__init__(config, tasks=tasks)
        BUILT.append(config.scale)

    def combine(self, losses, step):
        weights = torch.full_like(losses, self.config.scale)
        return (weights * losses).sum(), weights


@mtlx.hookimpl
def mtlx_register(registry):
    registry.strategies.register("ew", ThirdEW)
'''

WINE = '''
import mtlx
from mtlx_testing.plugin import ToyDataset


class Wine(ToyDataset):
    """Wine quality (the toy data)."""


@mtlx.hookimpl
def mtlx_register(registry):
    registry.datasets.register("wine-mt", Wine)
'''

SMALL = ("--epochs", "1", "--threads", "1", "-q")


@pytest.fixture
def third_ew(distribution):
    pytest.importorskip("mtlx_baselines", reason="the collision is with mtlx-baselines' ew")
    distribution("third-ew-pkg", "third_ew", THIRD_EW, entry_point="third")
    return lambda: sys.modules["third_ew.plugin"].BUILT


def test_a_bare_name_two_plugins_register_is_refused_in_one_line_with_both_choices(cli, third_ew, tmp_path):
    result = cli("run", "-d", "toy", "-s", "ew", *SMALL, "--out", tmp_path / "run")
    assert result.exit_code == 3
    assert result.output.splitlines()[-1] == (
        "Error: strategy 'ew' is registered by 2 plugins, mtlx-baselines==0.1.0 (baselines) and "
        "third-ew-pkg==0.1.0 (third): name one of 'mtlx-baselines:ew', 'third-ew-pkg:ew'"
    )
    assert not (tmp_path / "run").exists()


def test_each_owner_of_a_shared_name_runs_by_its_qualified_name(cli, third_ew, tmp_path):
    result = cli("run", "-d", "toy", "-s", "mtlx-baselines:ew", *SMALL, "--out", tmp_path / "baselines")
    assert result.exit_code == 0, result.output
    assert third_ew() == []
    result = cli("run", "-d", "toy", "-s", "third-ew-pkg:ew", "-o", "strategy.scale=3", *SMALL,
                 "--out", tmp_path / "third")
    assert result.exit_code == 0, result.output
    assert third_ew() == [3.0]
    recorded = tomllib.loads((tmp_path / "third" / "config.toml").read_text())["strategy"]
    assert recorded == {"name": "third-ew-pkg:ew", "scale": 3.0}


def test_a_first_party_strategy_naming_a_shared_base_gets_the_owner_it_depends_on(cli, third_ew, tmp_path):
    pytest.importorskip("mtlx_repmtl", reason="rep-mtl is the first-party strategy with a base")
    result = cli("run", "-d", "toy", "-s", "rep-mtl", *SMALL, "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert third_ew() == []  # mtlx-repmtl depends on mtlx-baselines: its "ew" is that one


def test_list_shows_both_owners_of_a_shared_name_qualified(cli, third_ew):
    result = cli("list", "strategies")
    assert result.exit_code == 0, result.output
    rows = [" ".join(line.split()) for line in result.output.splitlines()]
    assert any(row.startswith("mtlx-baselines:ew │ mtlx-baselines==0.1.0 (baselines)") for row in rows), rows
    assert any(row.startswith("third-ew-pkg:ew │ third-ew-pkg==0.1.0 (third)") for row in rows), rows
    details = cli("list", "--details", "ew")
    assert details.exit_code == 0, details.output
    assert "strategy mtlx-baselines:ew  mtlx-baselines==0.1.0 (baselines)" in details.output
    assert "strategy third-ew-pkg:ew  third-ew-pkg==0.1.0 (third)" in details.output
    assert "the weight of every task" in details.output  # the third party's option, documented


@pytest.mark.parametrize(
    ("declared", "cause"),
    [
        ({"target": "wine_mt.plugn"}, "ModuleNotFoundError: No module named 'wine_mt.plugn'"),
        ({"source": WINE.replace("def mtlx_register", "def mtlx_regster")}, "unknown hook 'mtlx_regster'"),
    ],
    ids=["module-typo", "hook-typo"],
)
def test_run_with_a_name_a_broken_plugin_may_provide_points_at_it(cli, distribution, tmp_path, declared, cause):
    distribution("wine-mt", "wine_mt", declared.get("source", WINE), entry_point="wine", target=declared.get("target"))
    result = cli("run", "-d", "wine-mt", *SMALL, "--out", tmp_path / "run")
    assert result.exit_code == 2
    line = result.output.splitlines()[-1]
    assert line.startswith("Error: no dataset 'wine-mt'; did you mean") is False
    assert line.startswith("Error: no dataset 'wine-mt' (available: ")
    assert "; a plugin that failed to load may provide it: Error loading mtlx plugin 'wine' (wine-mt==0.1.0, " in line
    assert cause in line


@pytest.mark.parametrize("group", ["mtlx.plugins", "mtlx_plugins", "MTLX", "mtl"])
def test_an_entry_point_in_a_group_like_ours_is_reported_by_list_and_run(cli, distribution, tmp_path, group):
    distribution("wine-mt", "wine_mt", WINE, entry_point="wine", group=group)
    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    text = " ".join(listed.output.split())
    assert (f"entry points mtlx does not read (the group must be 'mtlx'): 'wine' = wine_mt.plugin of "
            f"wine-mt==0.1.0 is in group '{group}'") in text
    result = cli("run", "-d", "wine-mt", *SMALL, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].endswith(
        f"; an entry point mtlx does not read may provide it: 'wine' = wine_mt.plugin of wine-mt==0.1.0 is in "
        f"group '{group}' (the group must be 'mtlx')"
    )
