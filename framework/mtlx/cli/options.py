"""Command-line settings as one config layer: shared by ``mtlx run`` and plugin commands that build a run.

A plugin command such as ``mtlx profile`` takes the same flags for what to
build and where its config comes from, and resolves them exactly as ``mtlx
run`` does, so the same flags always give the same config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from ..config import COMPONENT_SECTIONS, RunConfig, load_toml, parse_override, resolve_run_config
from ..registry import Registries

__all__ = ["cli_settings", "component_options", "config_options", "resolve_cli_config"]

F = TypeVar("F", bound=Callable[..., Any])

#: The flags that set something else than the ``train`` option of their (click parameter) name.
_FLAG_KEYS = {**{section: f"{section}.name" for section in COMPONENT_SECTIONS}, "backbone_weights": "backbone.weights"}


def cli_settings(config_file: str | None, flags: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The user's layer as dotted keys: the ``--config`` file < the flags that were given < ``-o`` overrides.

    A flag sets the ``train`` option of its name (``--batch-size``: ``train.batch_size``), a component flag
    the component's name (``--strategy``: ``strategy.name``).
    """
    user: dict[str, Any] = load_toml(config_file) if config_file else {}
    user.update({_FLAG_KEYS.get(k, f"train.{k}"): v for k, v in flags.items() if v is not None})
    user.update(parse_override(o) for o in overrides)
    return user


def resolve_cli_config(
    config_file: str | None, flags: Mapping[str, Any], overrides: Sequence[str], presets: Sequence[str], *,
    registries: Registries,
) -> RunConfig:
    """The full run config of a new run: defaults < the dataset's recommendation < presets < the user's layer,
    resolved against the command's ``registries`` (:func:`mtlx.cli.plugin_manager`)."""
    return resolve_run_config([cli_settings(config_file, flags, overrides)], presets, registries)


def _stack(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply click options so that ``--help`` lists them in the order given."""

    def apply(command: F) -> F:
        for option in reversed(options):  # the option applied last is listed first
            command = option(command)
        return command

    return apply


def component_options(dataset_help: str = "Dataset (default: digits). See `mtlx list datasets`.") -> Callable[[F], F]:
    """``--strategy``, ``--dataset``, ``--arch``, ``--backbone``, ``--head``, ``--data-root``: what a run builds."""
    return _stack(
        click.option("--strategy", "-s", help="MTO strategy (default: ew). See `mtlx list strategies`."),
        click.option("--dataset", "-d", help=dataset_help),
        click.option("--arch", help="Architecture (default: the dataset's recommendation, else hps)."),
        click.option("--backbone", help="Backbone (default: the dataset's recommendation)."),
        click.option("--head", help="Task head (default: the dataset's recommendation)."),
        click.option(
            "--data-root", type=click.Path(file_okay=False), help="Dataset directory (default: $MTLX_DATA/<dataset>)."
        ),
    )


def config_options(override_example: str) -> Callable[[F], F]:
    """``--preset``, ``--config`` and ``-o``: the layers the config is resolved from (``resolve_cli_config``)."""
    return _stack(
        click.option("--preset", "presets", multiple=True, help="A dataset preset (e.g. paper); repeatable."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file."),
        click.option(
            "-o",
            "--override",
            "overrides",
            multiple=True,
            metavar="SECTION.KEY=VALUE",
            help=f"Override any config value, e.g. {override_example}.",
        ),
    )
