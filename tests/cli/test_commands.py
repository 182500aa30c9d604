"""Plugins add `mtlx` subcommands through the mtlx_commands hook; a missing catalogued one says how to install it."""

from __future__ import annotations

import types

import click

import mtlx
from mtlx_testing import invoke_cli


def _commands_plugin(*commands: click.Command):
    def mtlx_commands():
        return list(commands)

    return types.SimpleNamespace(mtlx_commands=mtlx.hookimpl(mtlx_commands))


@click.command("hello")
@click.option("--name", default="world", help="Whom to greet.")
def hello(name: str) -> None:
    """Greet someone (a plugin's command)."""
    click.echo(f"hello {name}")


@click.command("run")
def shadow_run() -> None:
    """A plugin trying to replace the core's run."""


def test_a_plugins_command_is_listed_and_runs():
    greeter = {"greeter": _commands_plugin(hello)}
    listing = invoke_cli("--help", plugins=greeter)
    assert "hello" in listing.output and "Greet someone (a plugin's command)." in listing.output
    result = invoke_cli("hello", "--name", "mtlx", plugins=greeter)
    assert result.exit_code == 0 and result.output == "hello mtlx\n"


def test_a_plugin_cannot_replace_a_core_command(recwarn):
    shadow = {"shadow": _commands_plugin(shadow_run)}
    result = invoke_cli("run", "--help", plugins=shadow)
    assert result.exit_code == 0 and "Train a multi-task model" in result.output
    invoke_cli("--help", plugins=shadow)
    assert any("command 'run' already exists; skipped" in str(w.message) for w in recwarn)


def test_a_missing_catalogued_command_names_its_distribution(catalogue):
    catalogue("fancy-tools", commands=["fancy-sweep"])
    result = invoke_cli("fancy-sweep")
    assert result.exit_code == 2
    assert "no command 'fancy-sweep'; it comes with mtlx-fancy-tools: pip install mtlx-fancy-tools" in result.output


@click.command("interrupted")
def interrupted() -> None:
    """A command the user stops with Ctrl-C."""
    raise KeyboardInterrupt


def test_ctrl_c_outside_training_exits_130_in_one_line():
    result = invoke_cli("interrupted", plugins={"ctrl-c": _commands_plugin(interrupted)})
    assert result.exit_code == 130 and result.output == "Interrupted (Ctrl-C)\n"
