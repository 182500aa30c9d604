"""The commands come through the ``mtlx_commands`` hook: listed when mtlx-tools is installed, a hint when it is not."""

from __future__ import annotations

import importlib.metadata

from mtlx.catalog import source_root
from mtlx_testing import invoke_cli
from mtlx_tools.plugin import mtlx_commands


def test_entry_point_is_declared_by_the_distribution():
    points = [ep for ep in importlib.metadata.entry_points(group="mtlx") if ep.name == "tools"]
    assert [(ep.value, ep.dist.name) for ep in points] == [("mtlx_tools.plugin", "mtlx-tools")]


def test_the_commands_are_listed_in_mtlx_help():
    listing = invoke_cli("--help")
    assert listing.exit_code == 0
    for name in ("report", "analyze", "profile", "sweep"):
        assert name in listing.output
    assert sorted(c.name for c in mtlx_commands()) == ["analyze", "profile", "report", "sweep"]


def test_report_help_is_the_plugins():
    result = invoke_cli("report", "--help")
    assert result.exit_code == 0 and "Per-task metrics and Delta_m" in result.output


def test_without_the_plugin_a_command_names_its_install_command():
    result = invoke_cli("--no-plugin", "tools", "report", "runs")
    assert result.exit_code == 2
    root = source_root()
    install = f"pip install -e {root / 'plugins/tools'}" if root is not None else "pip install mtlx-tools"
    assert f"no command 'report'; it comes with mtlx-tools: {install}" in result.output
    assert len([line for line in result.output.splitlines() if "no command" in line]) == 1
