"""Every hook an mtlx plugin can implement, grouped by phase.

A plugin is any module or object exposed under the ``mtlx`` entry-point group
whose functions are marked with :data:`mtlx.hookimpl`::

    # my_pkg/plugin.py
    import mtlx

    @mtlx.hookimpl
    def mtlx_register(registry):
        registry.strategies.register("my-strategy", MyStrategy)

    # pyproject.toml
    [project.entry-points.mtlx]
    my-strategy = "my_pkg.plugin"

Hook names are checked when the plugin is loaded: an ``mtlx_*`` function that
matches no spec below marks the plugin broken (pluggy's ``check_pending``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from ..config import RunConfig
    from ..engine.engine import Engine
    from ..registry import Registries

hookspec = pluggy.HookspecMarker("mtlx")

# ---------------------------------------------------------------------------
# Registration phase
# ---------------------------------------------------------------------------


@hookspec
def mtlx_register(registry: Registries) -> None:
    """Register the plugin's components by name.

    Called once per plugin, on its own, when the registry is first built; an
    exception marks only this plugin broken. ``registry`` has one
    :class:`~mtlx.registry.Registry` per kind (``strategies``,
    ``datasets``, ``backbones``, ``heads``, ``archs``), each with
    ``register(name, cls)``; names are kebab-case and unique within the
    plugin. A name another plugin registers too stays usable for both as
    ``distribution:name``; the bare name is then refused naming both.

    Use in plugins: register classes, not instances; importing heavy
    dependencies inside the component module keeps ``mtlx list`` fast.
    """


@hookspec
def mtlx_commands() -> list[click.Command]:
    """Return the ``mtlx`` subcommands this plugin adds (click commands or groups).

    Called when the CLI starts; the commands appear in ``mtlx --help`` next
    to the core's (``run``, ``list``), under their own names, which must not
    clash with another's. Like ``pytest_addoption`` for pytest: the plugin
    owns its options and its code, the core only dispatches.

    Use in plugins: import heavy dependencies inside the command's function,
    so that ``mtlx --help`` stays fast.
    """


# ---------------------------------------------------------------------------
# Run phase
# ---------------------------------------------------------------------------


@hookspec
def mtlx_engine_created(engine: Engine, config: RunConfig) -> None:
    """Called after ``mtlx run`` built the engine and its default handlers, before training.

    The one way a plugin adds behaviour to a run: attach a
    :class:`~mtlx.engine.Handler` (``engine.attach(MyHandler())``); it runs
    after the default handlers at each event. The return value is ignored.
    """
