"""``mtlx profile``: what a model and a strategy cost (parameters, FLOPs, engine step times, memory).

The timed step is the engine's own (:func:`mtlx.runner.make_engine`, the config
resolved by :func:`mtlx.cli.options.resolve_cli_config` as ``mtlx run`` does),
split by the :mod:`mtlx.phases` labels. ``--synthetic`` reads no split: random
inputs and, as task losses, the mean squared prediction (the network's
backward cost does not depend on the loss); the dataset is still constructed
for its tasks and input shape.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import attrs
import click
from rich.console import Console

from mtlx.build import Components, build
from mtlx.cli import plugin_manager
from mtlx.cli.options import component_options, config_options, resolve_cli_config
from mtlx.config import RunConfig
from mtlx.errors import DataError
from mtlx.registry import Registries
from mtlx.runner import seed_everything
from mtlx.threads import torch_threads

from .measure import profile_components
from .output import print_result

__all__ = ["profile"]


def _build_synthetic(config: RunConfig, scratch: str, registries: Registries) -> Components:
    """Build against an empty scratch data root unless one was given: --synthetic reads no file.

    The dataset still gives the tasks and the input shape; one whose input size comes from its files
    (an .npy release without ``-o dataset.resolution``) says so.
    """
    if config.train.data_root is None:
        config = attrs.evolve(config, train=attrs.evolve(config.train, data_root=scratch))
    try:
        return build(config, registries)
    except DataError as error:
        raise DataError(
            f"{error}\n(--synthetic builds the dataset without its files: this one needs them for its input "
            "size; set it with -o dataset.resolution=[H,W] or pass --data-root)"
        ) from None


@click.command()
@component_options(dataset_help="Dataset (default: digits): gives the tasks, input size and a batch.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Training batch to time (default: the run's).")
@click.option("--device", help="auto (default), cpu, cuda, cuda:1 ...")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]))
@click.option("--seed", type=int)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's choice).")
@click.option(
    "--steps",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Timed training steps (0: no timing, only parameters, FLOPs and memory).",
)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True, help="Untimed steps first.")
@click.option(
    "--synthetic",
    is_flag=True,
    help="Random inputs and stand-in losses instead of a training batch (no split is read; "
    "the dataset still gives the tasks and input shape).",
)
@click.option(
    "--compare",
    default="ew",
    show_default=True,
    help="Also time this strategy on the same model and batch and report the extra cost over it ('' for none).",
)
@click.option("--no-flops", is_flag=True, help="Skip the FLOP count (no fvcore needed).")
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")
@config_options("-o train.per_task_grads=two-stage -o dataset.train_size=512")
@click.pass_context
def profile(
    ctx: click.Context,
    config_file: str | None,
    overrides: tuple[str, ...],
    presets: tuple[str, ...],
    threads: int | None,
    steps: int,
    warmup: int,
    synthetic: bool,
    compare: str,
    no_flops: bool,
    as_json: bool,
    **flags: Any,
) -> None:
    """Parameters, forward GFLOPs, time per training step and memory of a model + strategy.

    \b
    Examples (the tests run each):
      mtlx profile                               # ew on digits (hps, digits-cnn)
      mtlx profile --arch mtan --strategy mgda   # mgda's cost over ew
      mtlx profile --arch saliency-decoder -s mgda -o strategy.grad_mode=rep
      mtlx profile -d nyuv2 --synthetic -o dataset.resolution=[288,384] \\
          --batch-size 2 --steps 0               # no data files read, no timing
    """
    registries = plugin_manager(ctx).registries
    config = resolve_cli_config(config_file, flags, overrides, presets, registries=registries)
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="mtlx-synthetic-") as scratch:
        seed_everything(config.train.seed)
        components = _build_synthetic(config, scratch, registries) if synthetic else build(config, registries)
        result = profile_components(
            components,
            batch_size=config.train.batch_size,
            steps=steps,
            warmup=warmup,
            synthetic=synthetic,
            flops=not no_flops,
            compare=compare or None,
        )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_result(Console(soft_wrap=True), result)
