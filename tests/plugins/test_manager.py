"""Plugin manager: per-plugin isolation of import/hook/validation failures."""

from __future__ import annotations

import types

import attrs
import pytest

import mtlx
from mtlx import LossWeighting
from mtlx.plugins import PluginManager


class _S(LossWeighting):
    @attrs.frozen
    class Config:
        pass

    def combine(self, losses, step):
        return losses.sum(), losses


def _plugin(**hooks):
    return types.SimpleNamespace(**{k: mtlx.hookimpl(v) for k, v in hooks.items()})


def _register(name):
    def mtlx_register(registry):
        registry.strategies.register(name, _S)

    return mtlx_register


def test_good_plugins_register_and_a_raising_hook_only_breaks_its_plugin():
    pm = PluginManager(autoload=False)
    pm.register_object(_plugin(mtlx_register=_register("alpha")), "alpha-plugin")

    def boom(registry):
        raise RuntimeError("hook exploded")

    pm.register_object(_plugin(mtlx_register=boom), "bad-plugin")
    pm.register_object(_plugin(mtlx_register=_register("beta")), "beta-plugin")
    with pytest.warns(RuntimeWarning, match="bad-plugin"):
        regs = pm.registries
    assert regs.strategies.list() == ["alpha", "beta"]
    assert "hook exploded" in str(pm.broken["bad-plugin"])
    assert regs.strategies.entry("alpha").owner == "<local> (alpha-plugin)"


def test_misspelt_hook_marks_plugin_broken():
    pm = PluginManager(autoload=False)
    with pytest.warns(RuntimeWarning, match="typo-plugin"):
        pm.register_object(_plugin(mtlx_regster=_register("x")), "typo-plugin")
    assert "mtlx_regster" in str(pm.broken["typo-plugin"])
    assert pm.registries.strategies.list() == []


def test_module_that_fails_to_import_is_reported_by_name():
    with pytest.warns(RuntimeWarning, match="no_such_module_xyz"):
        pm = PluginManager(autoload=False, modules=["no_such_module_xyz"])
    error = pm.broken["no_such_module_xyz"]
    assert isinstance(error.cause, ModuleNotFoundError)


def test_collision_between_plugins_names_both():
    pm = PluginManager(autoload=False)
    pm.register_object(_plugin(mtlx_register=_register("same")), "first")
    pm.register_object(_plugin(mtlx_register=_register("same")), "second")
    with pytest.warns(RuntimeWarning, match="registered twice"):
        regs = pm.registries
    with pytest.raises(mtlx.PluginError, match=r"<local> \(first\) and <local> \(second\)"):
        regs.strategies.get("same")


def test_disable_autoload_env(monkeypatch):
    monkeypatch.setenv("MTLX_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert PluginManager().plugins == {}
