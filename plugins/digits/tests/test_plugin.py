"""Discovery: the installed distribution registers ``digits`` through its ``mtlx`` entry point."""

from __future__ import annotations

import importlib.metadata

from mtlx.hooks import PluginManager
from mtlx_digits import DigitsDataset


def test_entry_point_is_declared_by_the_distribution():
    points = [ep for ep in importlib.metadata.entry_points(group="mtlx") if ep.name == "digits"]
    assert [(ep.value, ep.dist.name) for ep in points] == [("mtlx_digits.plugin", "mtlx-digits")]


def test_entry_point_registers_the_dataset_under_its_name():
    manager = PluginManager(autoload=True)
    assert "digits" not in manager.broken
    entry = manager.registries.datasets.entry("digits")
    assert entry.obj is DigitsDataset
    assert entry.owner.startswith("mtlx-digits==") and entry.owner.endswith("(digits)")
