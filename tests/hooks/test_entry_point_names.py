"""Two plugins under one entry-point name: the loaded one keeps its record, the other is reported broken."""

from __future__ import annotations

import pytest

from mtlx.hooks import PluginManager


def test_a_second_plugin_of_a_taken_name_does_not_take_over_the_first_ones_record():
    with pytest.warns(RuntimeWarning, match="plugin name 'mtlx_testing.plugin' is used by"):
        pm = PluginManager(autoload=False, modules=["mtlx_testing.plugin", "mtlx_testing.plugin"])
    assert pm.plugins["mtlx_testing.plugin"].error is None  # the loaded plugin: listed, and in checkpoints' versions
    (key,) = pm.broken
    assert key == "mtlx_testing.plugin (<local>)" and "only the first is loaded" in str(pm.broken[key])
    assert "toy" in pm.registries.datasets
