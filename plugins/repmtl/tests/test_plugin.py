"""The plugin is discovered through its entry point like any third-party plugin."""

from __future__ import annotations

import importlib.metadata

from mtlx.hooks import PluginManager
from mtlx_repmtl import RepMTL


def test_entry_point_declared():
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="mtlx") if ep.name == "rep-mtl"]
    assert ep.value == "mtlx_repmtl.plugin"
    assert ep.dist is not None and ep.dist.name == "mtlx-repmtl"


def test_rep_mtl_resolves_through_the_entry_point():
    """A fresh manager that autoloads entry points registers 'rep-mtl' owned by mtlx-repmtl, unbroken."""
    manager = PluginManager(autoload=True)
    assert "rep-mtl" not in manager.broken
    entry = manager.registries.strategies.entry("rep-mtl")
    assert entry.obj is RepMTL
    assert entry.owner.startswith("mtlx-repmtl==") and entry.owner.endswith("(rep-mtl)")
    assert entry.summary.startswith("Rep-MTL (ICCV 2025)")


def test_blocking_the_plugin_removes_the_strategy():
    manager = PluginManager(autoload=True, blocked=["rep-mtl"])
    assert "rep-mtl" not in manager.registries.strategies
