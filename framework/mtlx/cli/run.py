"""``mtlx run``: train and evaluate one strategy on one dataset."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .. import distributed
from ..config import RunConfig, load_toml, resume_config
from ..errors import ConfigError
from ..hooks import PluginManager
from ..runner import check_resumable, interrupt_on_signals, prepare_run_dir, select_device, train
from . import launcher
from .context import plugin_manager
from .options import cli_settings, component_options, config_options, resolve_cli_config


@click.command()
@component_options()
@click.option("--backbone-weights", type=click.Path(dir_okay=False), help="Local file of backbone weights.")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", type=int)
@click.option("--device", help="auto (default: CUDA if available), cpu, cuda, cuda:1 ...")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's choice).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]))
@click.option("--loss-transform", type=click.Choice(["none", "log"]))
@click.option("--num-workers", type=click.IntRange(min=0))
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after N optimiser steps (resumable).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), help="Also write last.pt every N steps.")
@click.option("--on-nonfinite", type=click.Choice(["stop", "skip"]), help="NaN/Inf loss: stop (default) or skip the step.")
@config_options("-o strategy.rho=0.003 -o train.epochs=3")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: runs/<dataset>-<strategy>-<time>).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this directory; only "
              "options that extend or observe it (epochs upwards, max-steps, logging, threads) may change.")
@click.option("--tensorboard", is_flag=True, help="Also log to RUN_DIR/tensorboard.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--nproc", type=click.IntRange(min=1), help="Data-parallel processes: relaunches under torchrun.")
@click.option("--max-restarts", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --nproc: restart the workers this many times after a failure, from last.pt.")
@click.pass_context
def run(ctx: click.Context, config_file: str | None, overrides: tuple[str, ...], presets: tuple[str, ...],
        out: str | None, resume: str | None, tensorboard: bool, quiet: bool, nproc: int | None, max_restarts: int,
        **flags: Any) -> None:
    """Train a multi-task model and report per-task metrics and Delta_m.

    \b
    Examples:
      mtlx run                                        # ew on digits, CPU-sized defaults
      mtlx run --strategy rep-mtl --dataset digits -o strategy.rho=0.003
      mtlx run --strategy mgda --dataset nyuv2 --data-root ~/data/nyuv2 --preset paper
      torchrun --nproc-per-node 4 -m mtlx run -s rep-mtl -d nyuv2   # or: mtlx run --nproc 4 ...
    """
    plugins = plugin_manager(ctx)
    if nproc is not None and nproc > 1 and "WORLD_SIZE" not in os.environ:
        with interrupt_on_signals("before the workers started; nothing was written"):
            config, _ = _resolve(plugins, config_file, overrides, presets, out, resume, flags)  # bad input: one line
            distributed.check_device(config.train.device, nproc)
            run_dir = None if resume else prepare_run_dir(out, config)
        launcher.relaunch(nproc, max_restarts, run_dir)
    if max_restarts and "WORLD_SIZE" not in os.environ:
        raise ConfigError("--max-restarts needs --nproc 2 or more (torchrun restarts the workers it launched)")
    if resume is None and out is not None and _restarted_by_torchrun() and (Path(out) / "config.toml").is_file():
        resume = out  # torchrun restarted the group after a failure: continue from the last checkpoint (or step 0)
    with launcher.report_failure(), interrupt_on_signals("during start-up; nothing was written"):
        _run(plugins, config_file, overrides, presets, out, resume, tensorboard, quiet, flags)


def _resolve(plugins: PluginManager, config_file: str | None, overrides: tuple[str, ...], presets: tuple[str, ...],
             out: str | None, resume: str | None, flags: dict[str, Any]) -> tuple[RunConfig, dict[str, Any]]:
    """The run's config and, on resume, the options the user changed; raises on bad input."""
    if not resume:
        return resolve_cli_config(config_file, flags, overrides, presets, registries=plugins.registries), {}
    if presets:
        raise ConfigError("--preset defines the experiment and cannot be given with --resume")
    if out is not None and Path(out).resolve() != Path(resume).resolve():
        raise ConfigError(f"--out cannot be given with --resume: a resumed run stays in {resume}")
    user = cli_settings(config_file, flags, overrides)
    return resume_config(load_toml(check_resumable(resume)), user, where=str(resume), registries=plugins.registries)


def _run(plugins: PluginManager, config_file: str | None, overrides: tuple[str, ...], presets: tuple[str, ...],
         out: str | None, resume: str | None, tensorboard: bool, quiet: bool, flags: dict[str, Any]) -> None:
    config, changed = _resolve(plugins, config_file, overrides, presets, out, resume, flags)
    distributed.init_from_env(select_device(config.train.device))
    try:
        main = distributed.is_main_process()
        run_dir = (Path(resume) if resume else prepare_run_dir(out, config)) if main else None
        run_dir = distributed.broadcast_object(run_dir)
        for name, error in plugins.broken.items():
            warnings.warn(f"plugin {name} is broken and was skipped: {error}", RuntimeWarning, stacklevel=1)
        console = Console(soft_wrap=True)  # a line is never wrapped or cut when output is not a terminal

        def announce(step: int, epoch: int) -> None:  # called once the run directory exists and is held
            if resume:
                console.print(f"[bold]mtlx run[/] {config.strategy.name} on {config.dataset.name}: resuming "
                              f"{run_dir} at step {step} (epoch {epoch + 1} of {config.train.epochs})")
            else:
                console.print(f"[bold]mtlx run[/] {config.strategy.name} on {config.dataset.name} -> {run_dir}")

        results = train(config, run_dir, plugins=plugins, resume=bool(resume), resume_changes=changed,
                        progress=not quiet, tensorboard=tensorboard, on_start=announce)
        if main and "nothing_to_do" in results:
            console.print(results["nothing_to_do"])
        elif main:
            print_results(console, results)
    finally:
        distributed.shutdown()


def _restarted_by_torchrun() -> bool:
    return launcher.attempt() > 0


def print_results(console: Console, results: dict[str, Any]) -> None:
    """Per-task metrics of the final evaluation (test if present), with Delta_m."""
    split = results.get("test_split") or results["val_split"]
    metrics = results.get("test") or results["val"] or {}
    summary = results.get("test_summary") if results.get("test_split") else results.get("val_summary")
    table = Table(title=f"{results['strategy']} on {results['dataset']} ({split})", title_justify="left")
    table.add_column("task", style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for task, values in metrics.items():
        for i, (metric, value) in enumerate(values.items()):
            arrow = "↑" if results["higher_is_better"][task][metric] else "↓"
            table.add_row(task if i == 0 else "", f"{metric} {arrow}", f"{value:.4f}" if value is not None else "nan")
    console.print(table)
    if summary:
        console.print(
            f"Delta_m (vs single-task baseline, positive = better): "
            f"task-averaged {summary['delta_m_task']:+.2f}%, metric-averaged {summary['delta_m_metric']:+.2f}%"
        )
    else:
        console.print("Delta_m: no single-task baseline stored for these tasks")
    console.print(f"{results['steps']} steps in {results['train_time_s']:.1f}s")
