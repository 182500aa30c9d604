"""Every hook is called through one helper (PluginManager.call): a plugin hook that raises is reported in the
same line wherever it is called, with a real installed distribution (tests/hooks/conftest.py)."""

from __future__ import annotations

import sys
import warnings

import pytest
from click.testing import CliRunner

import mtlx
from mtlx.cli import Invocation, main

BOOM = '''
import mtlx

RAISES = {hook!r}
CALLED = []


def _called(hook):
    CALLED.append(hook)
    if hook == RAISES:
        raise RuntimeError("boom\\nsecond line of the cause")


@mtlx.hookimpl
def mtlx_register(registry):
    _called("mtlx_register")


@mtlx.hookimpl
def mtlx_addoption(options):
    _called("mtlx_addoption")


@mtlx.hookimpl
def mtlx_commands():
    _called("mtlx_commands")
    return []


@mtlx.hookimpl
def mtlx_engine_created(engine):
    _called("mtlx_engine_created")
'''

RUN = ("run", "-d", "toy", "-s", "toy-weighted", "--epochs", "1", "--threads", "1", "-q")
HOOKS = ("mtlx_register", "mtlx_addoption", "mtlx_commands", "mtlx_engine_created")


def _line(hook: str) -> str:
    cause = "RuntimeError: second line of the cause"  # one line: the cause's last
    return f"mtlx plugin 'boom' (boom-pkg==0.1.0, boom_pkg.plugin) raised in {hook}: {cause}"


@pytest.mark.parametrize("hook", HOOKS)
def test_a_hook_that_raises_is_reported_in_the_same_line_wherever_it_is_called(distribution, tmp_path, hook):
    distribution("boom-pkg", "boom_pkg", BOOM.format(hook=hook), entry_point="boom")
    invocation = Invocation()  # the command line's ctx.obj: its plugin manager is read after the command
    args = ["--help"] if hook == "mtlx_commands" else [*RUN, "--out", str(tmp_path / "run")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["--plugin", "mtlx_testing.plugin", *args], obj=invocation,
                                    catch_exceptions=False)
    reported = {str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)}
    if hook == "mtlx_engine_created":  # the run cannot go on without what the plugin meant to attach
        assert result.exit_code == 3, result.output
        assert result.output.splitlines()[-1] == f"Error: {_line(hook)}"
    else:  # a registration hook: the plugin is skipped, the command goes on, the same line is the warning
        assert result.exit_code == 0, result.output
        assert _line(hook) in reported
    assert str(invocation.manager.broken["boom"]) == _line(hook)
    called = sys.modules["boom_pkg.plugin"].CALLED
    assert called[-1] == hook, "a hook of the plugin was called after one of them raised"


def test_the_helper_passes_each_plugin_only_the_arguments_it_names_and_its_own():
    from mtlx.hooks import PluginManager

    seen = []

    class Plugin:
        @mtlx.hookimpl
        def mtlx_engine_created(self, config):  # no engine, no options
            seen.append(config)

    pm = PluginManager(autoload=False)
    pm.register_object(Plugin(), "narrow")
    assert pm.call("mtlx_engine_created", required=True, engine=object(), config="cfg", options={}) == {"narrow": None}
    assert seen == ["cfg"]
