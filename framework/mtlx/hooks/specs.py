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
A hook that raises: :meth:`mtlx.hooks.PluginManager.call`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from ..config import RunConfig
    from ..engine.engine import Engine
    from ..plugin_options import PluginOptions
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


@hookspec
def mtlx_addoption(options: PluginOptions) -> None:
    """Declare the plugin's own config sections, as ``pytest_addoption`` declares a pytest plugin's options.

    ``options.add("ema", EMAOptions)`` declares section ``[ema]`` whose options are the fields of the attrs
    class ``EMAOptions``, documented as a component's ``Config`` is (an ``Attributes:`` entry per option;
    ``mtlx_testing.check_options(EMAOptions)`` checks it). Users set them with ``-o ema.decay=0.99`` or an
    ``[ema]`` table in ``--config``; unknown keys and wrong types are refused in one line (exit 2); a run's
    ``config.toml`` records every section with its defaults; ``mtlx list --details ema`` shows them. The
    plugin reads them in :func:`mtlx_engine_created` (``options["ema"]``, the built class). A section has
    one owner, and the core's (``strategy``, ``train``, ...) are not a plugin's.

    Called once per plugin, after ``mtlx_register``.
    """


# ---------------------------------------------------------------------------
# Run phase
# ---------------------------------------------------------------------------


@hookspec
def mtlx_engine_created(engine: Engine, config: RunConfig, options: Mapping[str, Any]) -> None:
    """Called after ``mtlx run`` built the engine and its default handlers, before training.

    The one way a plugin adds behaviour to a run: attach a
    :class:`~mtlx.engine.Handler` (``engine.attach(MyHandler())``); it runs
    after the default handlers at each event. ``options`` maps every plugin
    section (:func:`mtlx_addoption`) to its built options class, so a handler
    can be configured and switched off per run. A plugin takes only the
    arguments it names. The return value is ignored; a hook that raises ends
    the run (exit 3, one line naming the plugin and its distribution).
    """
