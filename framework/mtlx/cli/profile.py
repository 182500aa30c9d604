"""``mtlx profile``: what a model and a strategy cost.

Reports parameters (shared and per task), forward FLOPs per sample (fvcore
with the extra handles of :mod:`mtlx.analysis.flops`, listing any op still
uncounted), the time of a training step split into forward, backward (the
strategy's ``backward``), optimiser step and the strategy's ``after_step``,
the activations saved for backward and the peak memory. With ``--strategy``
other than ``ew`` it also times ``ew`` on the same model and batch and
reports the strategy's extra cost: the overhead a paper's FLOP-free claims
leave out (e.g. Rep-MTL's).

The step is the engine's own: :func:`mtlx.engine.step.forward`, the task
losses, a :class:`~mtlx.StepContext`, ``strategy.backward``, the optimiser
the run would use. ``--synthetic`` reads no split: random inputs and,
as task losses, the mean squared prediction (the network's backward cost
does not depend on the loss); the dataset is still constructed for its
tasks and input shape.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import attrs
import click
import torch
from rich.console import Console
from rich.table import Table

from ..analysis import FlopReport, count_flops
from ..build import Components, build, build_strategy, resolve_run_config
from ..config import ComponentConfig, RunConfig, load_toml, parse_override
from ..engine import to_device
from ..engine.step import forward, task_losses
from ..errors import DataError
from ..interfaces import MTOStrategy, MultiTaskModel, StepContext
from ..runner import make_optimizer, seed_everything, select_device
from ..threads import torch_threads

__all__ = ["PhaseTimes", "ProfileResult", "profile", "profile_components"]

_PHASES = ("forward", "backward", "optimizer", "after_step")


@attrs.frozen
class PhaseTimes:
    """Median milliseconds per phase of one training step."""

    forward: float
    backward: float
    optimizer: float
    after_step: float

    @property
    def total(self) -> float:
        return self.forward + self.backward + self.optimizer + self.after_step


@attrs.frozen
class ProfileResult:
    """Everything ``mtlx profile`` reports (``to_dict`` is its ``--json`` output)."""

    arch: str
    backbone: str
    head: str
    dataset: str
    strategy: str
    device: str
    batch_size: int
    input_shape: tuple[int, ...]
    params_total: int
    params_shared: int
    params_per_task: dict[str, int]
    flops: FlopReport | None
    times: PhaseTimes | None
    ew_times: PhaseTimes | None
    saved_activations_bytes: int
    peak_memory_bytes: int
    peak_memory_kind: str

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=True)
        if self.times is not None:
            out["times"]["total"] = self.times.total
        if self.times is not None and self.ew_times is not None:
            out["ew_times"]["total"] = self.ew_times.total
            out["strategy_extra_ms"] = self.times.total - self.ew_times.total
        if self.flops is not None:
            out["flops"]["gflops"] = self.flops.gflops
        return out


# -- measurement -------------------------------------------------------------
def _count(params: Any) -> int:
    return sum(p.numel() for p in {id(p): p for p in params}.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first_samples(inputs: Any, n: int) -> Any:
    if isinstance(inputs, Mapping):
        return {t: x[:n] for t, x in inputs.items()}
    return inputs[:n]


def _batch_len(inputs: Any) -> int:
    return len(next(iter(inputs.values()))) if isinstance(inputs, Mapping) else len(inputs)


def _real_batch(components: Components, batch_size: int) -> tuple[Any, Any]:
    """The first ``batch_size`` training samples, collated as the dataset does."""
    dataset = components.dataset
    data = dataset.split("train")
    if dataset.multi_input:
        pairs = {t: dataset.collate([d[i] for i in range(min(batch_size, len(d)))]) for t, d in data.items()}
        return {t: p[0] for t, p in pairs.items()}, {t: p[1] for t, p in pairs.items()}
    inputs, targets = dataset.collate([data[i] for i in range(min(batch_size, len(data)))])
    return inputs, targets


def _synthetic_batch(components: Components, batch_size: int) -> tuple[Any, None]:
    shape = (batch_size, *components.dataset.input_shape)
    if components.dataset.multi_input:
        return {t: torch.randn(shape) for t in components.tasks}, None
    return torch.randn(shape), None


def _losses(components: Components, preds: Mapping[str, torch.Tensor], targets: Any) -> dict[str, torch.Tensor]:
    if targets is None:  # --synthetic: a stand-in loss per task with the same graph below it
        return {t: preds[t].float().square().mean() for t in components.tasks}
    return task_losses(preds, targets, components.tasks, components.config.train.loss_transform)


def _autocast(precision: str, device: torch.device) -> Any:
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _time_steps(
    components: Components, strategy: MTOStrategy, batch: tuple[Any, Any], device: torch.device, steps: int, warmup: int
) -> PhaseTimes:
    """Median per-phase times of ``steps`` training steps after ``warmup`` untimed ones."""
    model: MultiTaskModel = components.model
    multi_input = components.dataset.multi_input
    optimizer = make_optimizer(components.config.train, attrs.evolve(components, strategy=strategy))
    precision = components.config.train.precision
    inputs, targets = batch
    samples: dict[str, list[float]] = {phase: [] for phase in _PHASES}
    model.train()
    for i in range(warmup + steps):
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        t0 = time.perf_counter()
        with _autocast(precision, device):
            preds, rep = forward(model, inputs, multi_input=multi_input)
        losses = _losses(components, preds, targets)
        _sync(device)
        t1 = time.perf_counter()

        def recompute() -> dict[str, torch.Tensor]:
            with torch.no_grad(), _autocast(precision, device):
                return _losses(components, forward(model, inputs, multi_input=multi_input)[0], targets)

        ctx = StepContext(model=model, losses=losses, representation=rep, iteration=i, recompute_losses=recompute)
        strategy.backward(ctx)
        _sync(device)
        t2 = time.perf_counter()
        optimizer.step()
        _sync(device)
        t3 = time.perf_counter()
        strategy.after_step(ctx)
        _sync(device)
        t4 = time.perf_counter()
        if i >= warmup:
            for phase, (start, end) in zip(_PHASES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
                samples[phase].append((end - start) * 1e3)
    return PhaseTimes(**{phase: statistics.median(v) for phase, v in samples.items()})


def _saved_activations_bytes(components: Components, inputs: Any, device: torch.device) -> int:
    """Bytes autograd saves for backward in one training forward, parameters excluded.

    Device-independent activation memory: each saved storage counted once.
    """
    model = components.model
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        _autocast(components.config.train.precision, device),
    ):
        forward(model, inputs, multi_input=components.dataset.multi_input)
    return sum(seen.values())


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "CUDA allocator peak"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "process peak RSS"


def profile_components(
    components: Components,
    *,
    batch_size: int,
    steps: int = 5,
    warmup: int = 2,
    synthetic: bool = False,
    flops: bool = True,
) -> ProfileResult:
    """Measure ``components`` (as :func:`mtlx.build.build` returns them) on one training batch.

    ``steps=0`` skips the timing (parameters, FLOPs and activation memory only).
    """
    config = components.config
    device = select_device(config.train.device)
    model = components.model.to(device)
    try:
        batch = _synthetic_batch(components, batch_size) if synthetic else _real_batch(components, batch_size)
    except DataError as error:
        raise DataError(f"{error}\n(to profile without reading a split, pass --synthetic)") from None
    batch = to_device(batch, device)
    flop_report = count_flops(model, _first_samples(batch[0], 1)) if flops else None
    saved = _saved_activations_bytes(components, batch[0], device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = _time_steps(components, components.strategy, batch, device, steps, warmup) if steps else None
    peak, peak_kind = _peak_memory(device)
    ew_times = None
    if steps and config.strategy.name != "ew":
        ew_config = attrs.evolve(config, strategy=ComponentConfig(name="ew"))
        ew = build_strategy(ew_config, list(components.tasks), model)
        ew_times = _time_steps(components, ew, batch, device, steps, warmup)
    tasks = list(components.tasks)
    return ProfileResult(
        arch=str(config.arch.name),
        backbone=str(config.backbone.name),
        head=str(config.head.name),
        dataset=str(config.dataset.name),
        strategy=str(config.strategy.name),
        device=str(device),
        batch_size=_batch_len(batch[0]),
        input_shape=tuple(components.dataset.input_shape),
        params_total=_count([*model.parameters(), *components.strategy.extra_parameters()]),
        params_shared=_count(model.shared_parameters()),
        params_per_task={t: _count(model.task_parameters(t)) for t in tasks},
        flops=flop_report,
        times=times,
        ew_times=ew_times,
        saved_activations_bytes=saved,
        peak_memory_bytes=peak,
        peak_memory_kind=peak_kind,
    )


# -- output --------------------------------------------------------------------
def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _flops(n: float) -> str:
    return f"{n / 1e9:,.3f} G" if n >= 1e8 else f"{n / 1e6:,.3f} M"


def _print(console: Console, r: ProfileResult) -> None:
    title = f"{r.arch} / {r.backbone} / {r.head} on {r.dataset} {r.input_shape}, strategy {r.strategy}"
    console.print(f"[bold]mtlx profile[/] {title}")
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("parameters", f"{r.params_total:,}")
    table.add_row("  shared", f"{r.params_shared:,}")
    for task, n in r.params_per_task.items():
        table.add_row(f"  task {task}", f"{n:,}")
    if r.flops is not None:
        table.add_row("forward FLOPs / sample", _flops(r.flops.total))
        for module, n in sorted(r.flops.by_module.items(), key=lambda kv: -kv[1]):
            table.add_row(f"  {module}", _flops(n))
    console.print(table)
    if r.flops is not None:
        ops = ", ".join(f"{op} {_flops(n)}" for op, n in r.flops.by_operator.items())
        console.print(f"FLOPs by operator: {ops}", markup=False)
        if r.flops.uncounted:
            calls = ", ".join(f"{op} (x{n})" for op, n in r.flops.uncounted.items())
            console.print(f"[yellow]not counted (no FLOP handle):[/] {calls}")
        else:
            console.print("every operator that ran was counted")
    if r.times is not None:
        _print_times(console, r)
    console.print(f"activations saved for backward: {_mib(r.saved_activations_bytes)}")
    console.print(f"peak memory ({r.peak_memory_kind}): {_mib(r.peak_memory_bytes)}")


def _print_times(console: Console, r: ProfileResult) -> None:
    assert r.times is not None
    steps = Table(title=f"time per training step, batch {r.batch_size}, {r.device} (median ms)", title_justify="left")
    steps.add_column("strategy", style="bold")
    for column in (*_PHASES, "total"):
        steps.add_column(column, justify="right")
    rows = [(r.strategy, r.times)] + ([("ew", r.ew_times)] if r.ew_times is not None else [])
    for name, t in rows:
        steps.add_row(name, *(f"{getattr(t, p):.1f}" for p in _PHASES), f"{t.total:.1f}")
    console.print(steps)
    if r.ew_times is not None:
        extra = r.times.total - r.ew_times.total
        console.print(
            f"{r.strategy} costs {extra:+.1f} ms per step over ew "
            f"({r.times.total / r.ew_times.total:.2f}x; backward {r.times.backward - r.ew_times.backward:+.1f} ms)"
        )


#: CLI flag -> dotted config key.
_FLAG_KEYS = {
    "strategy": "strategy.name",
    "dataset": "dataset.name",
    "arch": "arch.name",
    "backbone": "backbone.name",
    "head": "head.name",
    "data_root": "train.data_root",
    "batch_size": "train.batch_size",
    "device": "train.device",
    "precision": "train.precision",
    "seed": "train.seed",
}


def _resolve(
    config_file: str | None, overrides: tuple[str, ...], presets: tuple[str, ...], flags: Mapping[str, Any]
) -> RunConfig:
    user: dict[str, Any] = load_toml(config_file) if config_file else {}
    user.update({_FLAG_KEYS[k]: v for k, v in flags.items() if v is not None})
    user.update(parse_override(o) for o in overrides)
    return resolve_run_config([user], presets)


def _build_synthetic(config: RunConfig, scratch: str) -> Components:
    """Build against an empty scratch data root unless one was given: --synthetic reads no file.

    The dataset still gives the tasks and the input shape; one whose input size comes from its files
    (an .npy release without ``-o dataset.resolution``) says so.
    """
    if config.train.data_root is None:
        config = attrs.evolve(config, train=attrs.evolve(config.train, data_root=scratch))
    try:
        return build(config)
    except DataError as error:
        raise DataError(
            f"{error}\n(--synthetic builds the dataset without its files: this one needs them for its input "
            "size; set it with -o dataset.resolution=[H,W] or pass --data-root)"
        ) from None


@click.command()
@click.option("--strategy", "-s", help="MTO strategy (default: ew); its extra cost over ew is reported.")
@click.option("--dataset", "-d", help="Dataset (default: digits): gives the tasks, input size and a batch.")
@click.option("--arch", help="Architecture (default: the dataset's recommendation, else hps).")
@click.option("--backbone", help="Backbone (default: the dataset's recommendation).")
@click.option("--head", help="Task head (default: the dataset's recommendation).")
@click.option(
    "--data-root", type=click.Path(file_okay=False), help="Dataset directory (default: $MTLX_DATA/<dataset>)."
)
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
@click.option("--no-flops", is_flag=True, help="Skip the FLOP count (no fvcore needed).")
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")
@click.option("--preset", "presets", multiple=True, help="A dataset preset (e.g. paper); repeatable.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option(
    "-o",
    "--override",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override any config value, e.g. -o strategy.mode=rep -o backbone.output_stride=16.",
)
def profile(
    config_file: str | None,
    overrides: tuple[str, ...],
    presets: tuple[str, ...],
    threads: int | None,
    steps: int,
    warmup: int,
    synthetic: bool,
    no_flops: bool,
    as_json: bool,
    **flags: Any,
) -> None:
    """Parameters, forward GFLOPs, time per training step and memory of a model + strategy.

    \b
    Examples:
      mtlx profile                                     # hps/digits-cnn/conv on digits, ew
      mtlx profile --arch mtan --dataset digits --strategy mgda
      mtlx profile --dataset nyuv2 --data-root ~/data/nyuv2 --batch-size 2 --steps 0   # no timing
    """
    config = _resolve(config_file, overrides, presets, flags)
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="mtlx-synthetic-") as scratch:
        seed_everything(config.train.seed)
        components = _build_synthetic(config, scratch) if synthetic else build(config)
        result = profile_components(
            components,
            batch_size=config.train.batch_size,
            steps=steps,
            warmup=warmup,
            synthetic=synthetic,
            flops=not no_flops,
        )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print(Console(soft_wrap=True), result)
