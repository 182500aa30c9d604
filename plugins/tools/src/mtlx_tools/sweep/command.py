"""``mtlx sweep``: validate every cell, then run, resume or skip each one through an executor."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.markup import escape

from mtlx.cli import plugin_manager
from mtlx.config import parse_override
from mtlx.errors import ConfigError, MtlxError, RunInterrupted

from . import cell as cell_job
from .cells import Cell, expand
from .executor import Executor, Job
from .manifest import (
    Entry,
    Manifest,
    adopt,
    check_run_dir,
    check_sweep_dir,
    check_unchanged,
    current_state,
    locked,
    log_path,
    run_dir,
    state_after,
)
from .progress import Progress
from .spec import SEED_AXIS, Spec, load_spec, parse_axis, parse_seeds

__all__ = ["sweep"]

#: The executor flags whose ``[executor]`` key is not their parameter's name.
_FLAG_KEYS = {"executor": "name", "time_limit": "time"}
_ACTIONS = {"pending": "run", "queued": "run", "interrupted": "resume", "finished": "skip (finished)"}


@attrs.frozen
class Plan:
    """The manifest a sweep starts from (the spec's cells, states as on disk) and the cells it launches."""

    manifest: Manifest
    launch: tuple[str, ...]

    def summary(self, sweep_dir: Path, retry_failed: bool) -> str:
        states = Counter(entry.state for entry in self.manifest.cells.values())
        failed = states["failed"]
        parts = [f"{states['pending'] + states['queued']} to run", f"{states['interrupted']} to resume",
                 f"{states['finished']} finished"]
        if failed:
            parts.append(f"{failed} failed ({'run again' if retry_failed else 'skipped; --retry-failed runs them'})")
        return f"mtlx sweep {self.manifest.name}: {len(self.manifest.cells)} cells in {sweep_dir}: {', '.join(parts)}"


@click.command()
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False))
@click.option("--strategy", "-s", "strategies", metavar="A,B,...", help="Strategies: the axis strategy.name.")
@click.option("--dataset", "-d", "datasets", metavar="A,B,...", help="Datasets: the axis dataset.name.")
@click.option("--seeds", help="Seeds, e.g. 0-4 or 0,2,5: the axis train.seed.")
@click.option("-g", "--grid", "axes", multiple=True, metavar="SECTION.KEY=V1,V2",
              help="An axis, e.g. -g strategy.rho=0.001,0.01 (applies to the cells whose component has the option).")
@click.option("-o", "--override", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="A base setting of every cell, as in mtlx run -o.")
@click.option("--preset", "presets", multiple=True, help="A dataset or strategy preset of every cell; repeatable.")
@click.option("--name", help="The sweep's name (default: the spec file's name, else DATASETS-STRATEGIES).")
@click.option("--out", type=click.Path(file_okay=False), help="Sweep directory (default: sweeps/NAME).")
@click.option("--executor", type=click.Choice(["local", "slurm"]), help="Where the runs go (default: local).")
@click.option("--jobs", type=click.IntRange(min=1), help="local: runs at a time (default: one per GPU, else 1).")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads per run (default: local, the CPUs over --jobs; slurm, --cpus).")
@click.option("--partition", help="slurm: partition.")
@click.option("--gpus", type=click.IntRange(min=0), help="slurm: GPUs per run.")
@click.option("--cpus", type=click.IntRange(min=1), help="slurm: CPUs per run.")
@click.option("--mem", help="slurm: memory per run, e.g. 16G.")
@click.option("--time", "time_limit", type=click.IntRange(min=1), help="slurm: time limit per run in minutes.")
@click.option("--setup", multiple=True, metavar="LINE", help="slurm: a shell line run before each job; repeatable.")
@click.option("--retry-failed", is_flag=True, help="Run the failed cells again (by default they are skipped).")
@click.option("--dry-run", is_flag=True, help="Validate and print the cells and what would happen; launch nothing.")
@click.pass_context
def sweep(ctx: click.Context, spec_file: str | None, strategies: str | None, datasets: str | None, seeds: str | None,
          axes: tuple[str, ...], overrides: tuple[str, ...], presets: tuple[str, ...], name: str | None,
          out: str | None, retry_failed: bool, dry_run: bool, **executor_flags: Any) -> None:
    """Run every cell of a grid of mtlx run settings (methods x settings x seeds), resumably.

    SPEC_FILE (TOML) holds the sections of an mtlx run --config file, the base of every cell; [grid] axes
    ("strategy.rho" = [0.001, 0.01], seeds = "0-4"), whose product is the sweep; optional [[settings]]
    entries, explicit points that the axes multiply except in the keys they set; and [executor] (the
    options below). The flags add to it. An axis on a component option multiplies only the cells whose
    component has it.

    Every cell is resolved and validated as mtlx run would before anything starts. Each run goes to
    OUT/runs/KEY, KEY readable from the cell plus a hash of its config, so running the same sweep again
    skips the finished runs, resumes the interrupted ones from their last.pt, and runs the failed ones
    again only with --retry-failed. OUT/manifest.json records the spec, the cells and their states.

    \b
    Examples:
      mtlx sweep benchmarks/sweeps/digits-quick.toml --jobs 2
      mtlx sweep -s ew,mgda,rep-mtl -d digits --seeds 0-4 -g strategy.rho=0.001,0.01 --dry-run
      mtlx report sweeps/digits-quick --reference ew
    """
    spec = _with_flags(load_spec(spec_file) if spec_file else None, strategies=strategies, datasets=datasets,
                       seeds=seeds, axes=axes, overrides=overrides, presets=presets, name=name)
    options = {**spec.executor, **{_FLAG_KEYS.get(k, k): v for k, v in executor_flags.items() if v not in (None, ())}}
    cells = expand(spec, plugin_manager(ctx).registries)
    sweep_dir = Path(out) if out else Path("sweeps") / spec.name
    root = ctx.find_root().params
    plugins, blocked = list(root.get("plugins", ())), list(root.get("blocked", ()))
    console = Console(soft_wrap=True)
    plan = _plan(sweep_dir, spec, cells, plugins, blocked, retry_failed)
    if dry_run:
        console.print(escape(plan.summary(sweep_dir, retry_failed)) + " (dry run: nothing launched)")
        console.print(escape(_cell_lines(plan, retry_failed)))
        return
    executor, threads, parallel = _executor(options, spec, sweep_dir)
    with locked(sweep_dir):
        plan = _plan(sweep_dir, spec, cells, plugins, blocked, retry_failed)  # now that no other sweep runs here
        console.print(escape(plan.summary(sweep_dir, retry_failed)))
        _launch(plan, sweep_dir, executor, threads, console, parallel)
    _conclude(plan.manifest, sweep_dir, console)


def _with_flags(spec: Spec | None, *, strategies: str | None, datasets: str | None, seeds: str | None,
                axes: Sequence[str], overrides: Sequence[str], presets: Sequence[str], name: str | None) -> Spec:
    """The spec file's spec (or an empty one) with the flags: -s/-d/--seeds/-g replace its axes, -o adds to its base."""
    if spec is None and not (strategies or datasets or seeds or axes):
        raise ConfigError("mtlx sweep needs a spec file or axes to sweep (-s, -d, --seeds, -g); see mtlx sweep --help")
    spec = spec or Spec(name="")
    for key, values in (("dataset.name", datasets), ("strategy.name", strategies)):
        if values is not None:
            spec = spec.with_axis(*parse_axis(f"{key}={values}"))
    if seeds is not None:
        spec = spec.with_axis(SEED_AXIS, parse_seeds(seeds))
    for text in axes:
        spec = spec.with_axis(*parse_axis(text))
    spec = attrs.evolve(spec, base={**spec.base, **dict(parse_override(o) for o in overrides)},
                        presets=(*spec.presets, *presets))
    return attrs.evolve(spec, name=_checked_name(name or spec.name or _default_name(spec)))


def _default_name(spec: Spec) -> str:
    """``digits-ew+mgda``: the datasets and strategies the flags or the base name (mtlx run's defaults else)."""
    axes = dict(spec.axes)
    parts = [axes.get(f"{s}.name") or [spec.base.get(f"{s}.name", default)] for s, default in
             (("dataset", "digits"), ("strategy", "ew"))]
    return "-".join("+".join(map(str, values)) for values in parts)


def _checked_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name) or name.startswith("."):
        raise ConfigError(f"sweep name {name!r} may only hold letters, digits and . _ + - (it names a directory)")
    return name


def _plan(sweep_dir: Path, spec: Spec, cells: Sequence[Cell], plugins: list[str], blocked: list[str],
          retry_failed: bool) -> Plan:
    """Check the sweep directory against the cells (read only) and say what each cell needs."""
    previous = check_sweep_dir(sweep_dir, spec.name)
    cells = adopt(sweep_dir, cells)
    check_unchanged(sweep_dir, cells)
    for cell in cells:
        check_run_dir(run_dir(sweep_dir, cell.key), cell.config, cell.defaults)
    old = previous.cells if previous else {}
    entries = {cell.key: Entry.of(cell, old.get(cell.key)) for cell in cells}
    for entry in entries.values():
        entry.state = current_state(sweep_dir, entry.key, entry.state)
    launch = tuple(key for key, entry in entries.items()
                   if entry.state in ("pending", "interrupted") or (retry_failed and entry.state == "failed"))
    manifest = Manifest(name=spec.name, spec=spec.to_dict(), plugins=plugins, blocked=blocked, cells=entries)
    return Plan(manifest=manifest, launch=launch)


def _cell_lines(plan: Plan, retry_failed: bool) -> str:
    """One line per cell in launch order: what the sweep would do with it, and its run directory's name."""
    actions = {**_ACTIONS, "failed": "retry" if retry_failed else "skip (failed)"}
    cells = plan.manifest.cells
    return "\n".join(f"{actions[cells[key].state]:<15} {key}" for key in _seed_major(list(cells), plan.manifest))


def _executor(options: Mapping[str, Any], spec: Spec, sweep_dir: Path) -> tuple[Executor, int, int | None]:
    """The executor the options ask for, the CPU threads of each run and the runs at a time (None: the
    executor's scheduler decides); nothing is written yet."""
    name = options.get("name", "local")
    threads = options.get("threads") or spec.base.get("train.threads")
    if name == "local":
        from .local import LocalExecutor

        gpus = _cuda_devices()
        jobs = int(options.get("jobs") or max(gpus, 1))
        return LocalExecutor(jobs, log_dir=sweep_dir / "logs", gpus=gpus), threads or max(1, _cpus() // jobs), jobs
    if name == "slurm":
        try:
            from .slurm import SlurmExecutor
        except ImportError as error:
            raise ConfigError(f"--executor slurm needs submitit: pip install 'mtlx-tools[slurm]' ({error})") from None
        cpus = options.get("cpus", 1)
        executor = SlurmExecutor(folder=sweep_dir / "slurm", partition=options.get("partition"),
                                 gpus=options.get("gpus", 0), cpus=cpus, mem=options.get("mem"),
                                 time=options.get("time"), setup=tuple(options.get("setup", ())),
                                 log_dir=sweep_dir / "logs")
        return executor, threads or cpus, None
    raise ConfigError(f"executor {name!r} is unknown (local, slurm)")


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _seed_major(keys: Sequence[str], manifest: Manifest) -> list[str]:
    """The cells by seed, then in spec order: a sweep stopped part-way has every setting on its first seeds."""
    seeds = sorted({manifest.cells[key].config.get(SEED_AXIS, 0) for key in keys})
    return sorted(keys, key=lambda key: seeds.index(manifest.cells[key].config.get(SEED_AXIS, 0)))


def _launch(plan: Plan, sweep_dir: Path, executor: Executor, threads: int, console: Console,
            parallel: int | None) -> None:
    """Hand the cells to launch to the executor, recording each run's end in the manifest as it comes."""
    manifest = plan.manifest
    for key in plan.launch:
        manifest.cells[key].state = "queued"
    manifest.write(sweep_dir)
    jobs = [Job(key=key, run_dir=run_dir(sweep_dir, key), argv=cell_job.command(sweep_dir, key, threads),
                threads=threads) for key in _seed_major(plan.launch, manifest)]
    states = Counter(entry.state for entry in manifest.cells.values())
    with Progress(console, total=len(manifest.cells), done=states["finished"], failed=states["failed"],
                  launched=len(jobs), parallel=parallel) as progress:

        def ended(job: Job, code: int | None) -> None:
            entry = manifest.cells[job.key]
            entry.state, entry.exit_code = state_after(sweep_dir, job.key, code), code
            entry.attempts += 1
            manifest.write(sweep_dir)
            progress.ended(job.key, entry.state, code, job.run_dir, log_path(sweep_dir, job.key))

        try:
            if jobs:
                executor.run(jobs, ended)
        except RunInterrupted as error:
            for entry in manifest.cells.values():
                if entry.state == "queued":
                    entry.state = current_state(sweep_dir, entry.key, "pending")
            manifest.write(sweep_dir)
            raise RunInterrupted(f"sweep {error}; the manifest records what ran: run the same command again to "
                                 "resume") from None


def _conclude(manifest: Manifest, sweep_dir: Path, console: Console) -> None:
    """All finished: say how to report them; else one line naming the runs that did not finish (exit 1)."""
    unfinished = [entry for entry in manifest.cells.values() if entry.state != "finished"]
    if not unfinished:
        console.print(f"all {len(manifest.cells)} runs finished: mtlx report {escape(str(sweep_dir))}")
        return
    named = ", ".join(f"{e.key} ({e.state}, exit {e.exit_code})" for e in unfinished[:5])
    more = f" and {len(unfinished) - 5} more" if len(unfinished) > 5 else ""
    raise MtlxError(f"{len(unfinished)} of {len(manifest.cells)} runs did not finish: {named}{more}; logs in "
                    f"{sweep_dir / 'logs'}; run the sweep again to resume, with --retry-failed to re-run the failed")
