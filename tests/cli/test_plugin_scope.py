"""A command line's plugins are its own: ``--plugin``/``--no-plugin`` reach everything it builds (Rep-MTL's base
weighting included) and nothing after it. There is no process-wide plugin manager to leak or to reset."""

from __future__ import annotations

import importlib.util

import pytest

import mtlx
import mtlx.hooks
from mtlx.hooks import PluginManager
from mtlx.registry import Registries
from mtlx_testing import ToyModel, assert_refused_at_start_up, toy_tasks

#: rep-mtl and its default base (ew) are installed: not in the core-alone matrix target
FIRST_PARTY = all(importlib.util.find_spec(m) is not None for m in ("mtlx_repmtl", "mtlx_baselines"))


def _datasets(result) -> set[str]:
    """The names ``mtlx list datasets`` shows (its table's first column)."""
    assert result.exit_code == 0, result.output
    lines = result.output.split("\n\n")[0].splitlines()[3:]  # title, header, rule
    return {line.split()[0] for line in lines if line.strip()}


def test_a_command_lines_plugins_do_not_outlive_it(cli):
    assert "toy" in _datasets(cli("list", "datasets"))
    assert "toy" not in _datasets(cli("list", "datasets", toy=False))  # the next command line: installed only
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    try:  # nor does the Python API afterwards see what the command line loaded
        mtlx.MTL("toy-weighted", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads))
    except mtlx.UnknownComponentError as error:
        assert "toy-weighted" in str(error)
    else:
        raise AssertionError("mtlx.MTL found a strategy that only an earlier command line's --plugin loaded")


@pytest.mark.skipif(not FIRST_PARTY, reason="needs mtlx-repmtl and its base weighting ew (mtlx-baselines)")
def test_no_plugin_reaches_rep_mtls_base_and_nothing_after_it(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("--no-plugin", "baselines", "run", "-d", "toy", "-s", "rep-mtl", "--epochs", "1", "--threads", "1",
                 "-q", "--out", out)
    assert_refused_at_start_up(result, "'ew'", out)  # the base (ew) comes with the blocked plugin
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    mtl = mtlx.MTL("rep-mtl", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads))
    assert type(mtl.strategy.base) is PluginManager().registries.strategies.get("ew")  # installed, afresh


@pytest.mark.skipif(not FIRST_PARTY, reason="needs mtlx-repmtl and its base weighting ew (mtlx-baselines)")
def test_the_python_api_builds_from_the_registries_it_is_given():
    """``mtlx.MTL(..., registries=)``: Rep-MTL's base is looked up there, not in the installed plugins."""
    toy_weighting = PluginManager(modules=["mtlx_testing.plugin"]).registries.strategies.get("toy-weighted")
    registries = Registries()
    registries.strategies.register("rep-mtl", PluginManager().registries.strategies.get("rep-mtl"))
    registries.strategies.register("ew", toy_weighting)  # this caller's "ew" is not the installed one
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    mtl = mtlx.MTL("rep-mtl", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads),
                   registries=registries)
    assert type(mtl.strategy.base) is toy_weighting


def test_no_plugin_manager_is_cached_process_wide():
    """Nothing in ``mtlx`` or ``mtlx.hooks`` holds a manager: each command line and each API call makes its own."""
    for module in (mtlx, mtlx.hooks, mtlx.hooks.manager):
        held = [name for name, value in vars(module).items() if isinstance(value, PluginManager)]
        assert not held, f"{module.__name__} holds a plugin manager: {held}"
        assert not hasattr(module, "get_plugin_manager") and not hasattr(module, "reset_plugin_manager")
    assert PluginManager().registries is not PluginManager().registries
