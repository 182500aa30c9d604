"""`mtlx list`: installed components by kind and catalogued plugins that are not installed."""

from __future__ import annotations

import textwrap


def test_list_shows_components_with_owner_and_missing_catalogue_entries(cli, tmp_path, monkeypatch):
    catalogue = tmp_path / "registry.toml"
    catalogue.write_text(
        textwrap.dedent(
            """
            [plugins.fancy]
            dir = "plugins/fancy"
            distribution = "mtlx-fancy"
            entry_point = "fancy"
            provides.datasets = ["fancy-data"]
            extras = []
            """
        )
    )
    monkeypatch.setenv("MTLX_REGISTRY", str(catalogue))
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "toy-weighted" in result.output and "<local> (mtlx.testing.plugin)" in result.output
    assert "mtlx-fancy (datasets: fancy-data)" in result.output
    assert "pip install mtlx-fancy" in result.output


def test_list_filters_by_kind_and_pattern(cli):
    result = cli("list", "strategies", "toy-*")
    assert result.exit_code == 0
    assert "toy-weighted" in result.output
    assert "datasets" not in result.output


def test_unknown_kind_is_a_usage_error(cli):
    result = cli("list", "strategy")
    assert result.exit_code == 2 and "Invalid value" in result.output
