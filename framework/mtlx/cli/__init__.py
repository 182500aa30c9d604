"""The ``mtlx`` command line: a click group whose subcommands load lazily.

Errors raised on purpose (:class:`mtlx.errors.MtlxError`) print one line and
exit with the error's code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import click

from ..errors import MtlxError, did_you_mean
from ..plugins import get_plugin_manager, reset_plugin_manager

__all__ = ["main"]

_COMMANDS = {
    "run": "mtlx.cli.run:run",
    "list": "mtlx.cli.list_cmd:list_components",
    "profile": "mtlx.cli.profile:profile",
    "report": "mtlx.cli.report:report",
    "analyze": "mtlx.cli.analyze:analyze",
}


class MtlxGroup(click.Group):
    """Lazy subcommands, did-you-mean for typos, and one-line errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self._available(name))

    @staticmethod
    def _available(name: str) -> bool:
        module = _COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS or not self._available(name):
            return None
        module, attr = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            ctx.fail(f"no command {name!r}{did_you_mean(name, self.list_commands(ctx))}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MtlxError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:  # Ctrl-C outside training (start-up, final evaluation): 130, as a training interrupt
            if ctx.obj and ctx.obj.get("debug"):
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
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # broken plugins are reported by the commands
        if plugins or blocked:
            reset_plugin_manager()
            get_plugin_manager(modules=plugins, blocked=blocked)
        else:
            get_plugin_manager()
