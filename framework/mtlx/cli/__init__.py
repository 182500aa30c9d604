"""The ``mtlx`` command line: a click group whose subcommands load lazily.

Errors raised on purpose (:class:`mtlx.errors.MtlxError`) print one line and
exit with the error's code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import click

from ..catalog import load_catalog, source_root
from ..errors import MtlxError, did_you_mean
from .context import Invocation, plugin_manager

__all__ = ["Invocation", "main", "plugin_manager"]

_COMMANDS = {
    "run": "mtlx.cli.run:run",
    "list": "mtlx.cli.list_cmd:list_components",
}


def _plugin_commands(ctx: click.Context) -> dict[str, click.Command]:
    """``{name: command}`` from every plugin's ``mtlx_commands`` (a plugin that raises there is reported as
    every failing hook is: :meth:`mtlx.hooks.PluginManager.call`).

    Collected once per invocation: listing, lookup and the did-you-mean hint all ask.
    """
    if "mtlx.plugin_commands" in ctx.meta:
        return ctx.meta["mtlx.plugin_commands"]
    commands: dict[str, click.Command] = {}
    for plugin, offered in plugin_manager(ctx).call("mtlx_commands").items():
        for command in offered:
            if command.name in _COMMANDS or command.name in commands:
                warnings.warn(f"plugin {plugin}: command {command.name!r} already exists; skipped",
                              RuntimeWarning, stacklevel=2)
                continue
            commands[command.name] = command
    ctx.meta["mtlx.plugin_commands"] = commands
    return commands


def _catalogued_command(name: str) -> str:
    """`` (it comes with DIST: pip install ...)`` when a catalogued plugin provides command ``name``."""
    for entry in load_catalog():
        if name in entry.provides.get("commands", []):
            return f"; it comes with {entry.distribution}: {entry.install_command(source_root())}"
    return ""


class MtlxGroup(click.Group):
    """The core's subcommands (lazy) and the plugins' (``mtlx_commands``), did-you-mean, one-line errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*_COMMANDS, *_plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module, attr = _COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return _plugin_commands(ctx).get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            hint = _catalogued_command(name) or did_you_mean(name, self.list_commands(ctx))
            ctx.fail(f"no command {name!r}{hint}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MtlxError as error:
            if ctx.ensure_object(Invocation).debug:
                raise
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:  # Ctrl-C outside training (start-up, final evaluation): 130, as a training interrupt
            if ctx.ensure_object(Invocation).debug:
                raise
            click.echo("Interrupted (Ctrl-C)", err=True)
            ctx.exit(130)


@click.group(cls=MtlxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE", help="Also load this plugin module.")
@click.option("--no-plugin", "blocked", multiple=True, metavar="NAME", help="Do not load this entry point.")
@click.version_option(package_name="mtlx", message="mtlx %(version)s")
@click.pass_context
def main(ctx: click.Context, debug: bool, plugins: tuple[str, ...], blocked: tuple[str, ...]) -> None:
    """mtlx: multi-task learning with pluggable strategies, datasets and architectures.

    \b
    Quick start:
      mtlx run                               # EW on the embedded digits dataset
      mtlx run --strategy rep-mtl --dataset digits
      mtlx list                              # installed and available plugins
    """
    ctx.ensure_object(Invocation).debug = debug
    plugin_manager(ctx)
