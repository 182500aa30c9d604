"""Plugin manager: per-plugin isolation of import/hook/validation failures."""

from __future__ import annotations

import importlib.metadata
import types
import warnings

import pytest

import mtlx
from mtlx.hooks import PluginManager
from mtlx_testing.plugin import ToyWeighted


def _plugin(**hooks):
    return types.SimpleNamespace(**{k: mtlx.hookimpl(v) for k, v in hooks.items()})


def _register(name):
    def mtlx_register(registry):
        registry.strategies.register(name, ToyWeighted)

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


def test_a_name_two_plugins_register_is_kept_for_both_and_neither_plugin_is_broken():
    pm = PluginManager(autoload=False)
    pm.register_object(_plugin(mtlx_register=_register("same")), "first")
    pm.register_object(_plugin(mtlx_register=_register("same")), "second")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is broken, nothing to warn about
        regs = pm.registries
    assert pm.broken == {}
    with pytest.raises(mtlx.PluginError, match=r"^strategy 'same' is registered by 2 plugins, <local> \(first\) and "
                       r"<local> \(second\): name one of 'first:same', 'second:same'$"):
        regs.strategies.get("same")
    assert regs.strategies.entry("second:same").owner == "<local> (second)"


def test_disable_autoload_env(monkeypatch):
    monkeypatch.setenv("MTLX_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert PluginManager().plugins == {}


def _half_registering(registry):
    registry.strategies.register("half-done", ToyWeighted)
    raise RuntimeError("failed after one registration")


def test_a_plugin_failing_half_way_contributes_nothing_and_its_other_hooks_do_not_fire():
    fired = []
    pm = PluginManager(autoload=False)
    pm.register_object(
        _plugin(mtlx_register=_half_registering, mtlx_engine_created=lambda engine, config: fired.append("half")),
        "half-plugin",
    )
    pm.register_object(_plugin(mtlx_register=_register("alpha")), "alpha-plugin")
    with pytest.warns(RuntimeWarning, match="half-plugin"):
        regs = pm.registries
    assert regs.strategies.list() == ["alpha"]
    with pytest.raises(mtlx.PluginError, match=r"strategy 'half-done' is unavailable: .*failed after one registration"):
        regs.strategies.get("half-done")
    pm.call("mtlx_engine_created", engine=None, config=None, options={})
    assert fired == []


def test_every_catalogued_component_of_a_broken_plugin_is_unavailable_with_its_cause(catalogue):
    catalogue("fancy", strategies=["fancy-a", "fancy-b"], backbones=["fancy-net"])

    def boom(registry):
        raise RuntimeError("needs libfancy")

    pm = PluginManager(autoload=False)
    pm.register_object(_plugin(mtlx_register=boom), "fancy")
    with pytest.warns(RuntimeWarning, match="fancy"):
        regs = pm.registries
    for registry, name in ((regs.strategies, "fancy-a"), (regs.strategies, "fancy-b"), (regs.backbones, "fancy-net")):
        with pytest.raises(mtlx.PluginError, match=rf"'{name}' is unavailable: .*needs libfancy"):
            registry.get(name)
    with pytest.raises(mtlx.UnknownComponentError):
        regs.strategies.get("fancy-c")


def test_a_manager_is_the_installed_plugins_or_those_not_blocked():
    from mtlx.hooks import PluginManager
    from mtlx.hooks.manager import ENTRY_POINT_GROUP

    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}  # core alone: none
    default = PluginManager()
    assert set(default.plugins) | set(default.broken) == installed
    assert not PluginManager(blocked=sorted(installed)).plugins
