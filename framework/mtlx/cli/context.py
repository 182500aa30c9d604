"""What one ``mtlx`` command line shares with its subcommands: click's context object (``ctx.obj``).

As pytest hands every plugin ``config.pluginmanager``, the ``mtlx`` group makes one
:class:`~mtlx.hooks.PluginManager` per invocation (its ``--plugin``/``--no-plugin``
applied) and every subcommand, a plugin's included, takes the plugins and their
registries from here, so ``--no-plugin NAME`` reaches everything the command builds.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import attrs
import click

from ..hooks import PluginManager

__all__ = ["Invocation", "plugin_manager"]


@attrs.define
class Invocation:
    """``ctx.obj`` of the ``mtlx`` group.

    ``extra`` are in-process plugin objects registered after the installed ones (tests and notebooks:
    :func:`mtlx_testing.invoke_cli`'s ``plugins=``); the manager is made on first use, once per invocation.
    """

    debug: bool = False
    extra: Mapping[str, object] = attrs.field(factory=dict)
    manager: PluginManager | None = None


def plugin_manager(ctx: click.Context | None = None) -> PluginManager:
    """This command line's plugin manager, made on first use from the root command's ``--plugin``/``--no-plugin``.

    Plugin commands call it (``plugin_manager(ctx).registries``) for what to build. A command invoked on its
    own, outside the ``mtlx`` group (``CliRunner().invoke(command)``), gets the installed plugins.
    """
    root = (ctx or click.get_current_context()).find_root()
    invocation = root.ensure_object(Invocation)
    if invocation.manager is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # broken plugins are reported by the commands
            manager = PluginManager(modules=root.params.get("plugins", ()), blocked=root.params.get("blocked", ()))
            for name, plugin in invocation.extra.items():
                manager.register_object(plugin, name)
        invocation.manager = manager
    return invocation.manager
