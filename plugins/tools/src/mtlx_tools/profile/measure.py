"""What a model and a strategy cost: parameters, forward FLOPs, engine step times, activations and memory."""

from __future__ import annotations

import resource
import sys
from collections.abc import Mapping
from typing import Any

import attrs
import torch

from mtlx.build import Components, build_strategy
from mtlx.config import ComponentConfig, resolve_sections
from mtlx.engine import Engine, to_device
from mtlx.engine.step import forward
from mtlx.errors import DataError
from mtlx.runner import select_device

from ..flops import FlopReport, count_flops
from .timing import StepTimes, step_engine, time_steps

__all__ = ["ProfileResult", "profile_components"]


@attrs.frozen
class ProfileResult:
    """Everything ``mtlx profile`` reports (``to_dict`` is its ``--json`` output)."""

    arch: str
    backbone: str
    head: str
    dataset: str
    strategy: str
    compare: str | None
    device: str
    precision: str
    batch_size: int
    input_shape: tuple[int, ...]
    params_total: int
    params_shared: int
    params_per_task: dict[str, int]
    flops: FlopReport | None
    times: StepTimes | None
    compare_times: StepTimes | None
    saved_activations_bytes: int
    peak_memory_bytes: int
    peak_memory_kind: str

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=True)
        for key in ("times", "compare_times"):
            times = getattr(self, key)
            if times is not None:
                out[key]["other"] = times.other
        if self.times is not None and self.compare_times is not None:
            out["strategy_extra_ms"] = self.times.total - self.compare_times.total
        if self.flops is not None:
            out["flops"]["gflops"] = self.flops.gflops
        return out


def _count(params: Any) -> int:
    return sum(p.numel() for p in {id(p): p for p in params}.values())


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
    return dataset.collate([data[i] for i in range(min(batch_size, len(data)))])


def _synthetic_batch(components: Components, batch_size: int) -> tuple[Any, dict[str, None]]:
    """Random inputs of the dataset's shape; no targets (the timed step uses stand-in losses)."""
    shape = (batch_size, *components.dataset.input_shape)
    targets = dict.fromkeys(components.tasks)
    if components.dataset.multi_input:
        return {t: torch.randn(shape) for t in components.tasks}, targets
    return torch.randn(shape), targets


def _saved_activations_bytes(engine: Engine, inputs: Any) -> int:
    """Bytes autograd saves for backward in one training forward, parameters excluded (each storage once)."""
    model = engine.model
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
        engine.autocast(),
    ):
        forward(model, inputs, multi_input=engine.multi_input)
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
    compare: str | None = "ew",
) -> ProfileResult:
    """Measure ``components`` (as :func:`mtlx.build.build` returns them) on one training batch.

    ``steps=0`` skips the timing (parameters, FLOPs and activation memory only); ``compare``
    names a strategy timed on the same model and batch (skipped when it is the profiled one).
    """
    config = components.config
    device = select_device(config.train.device)
    model = components.model.to(device)
    try:
        batch = _synthetic_batch(components, batch_size) if synthetic else _real_batch(components, batch_size)
    except DataError as error:
        raise DataError(f"{error}\n(to profile without reading a split, pass --synthetic)") from None
    batch = to_device(batch, device)
    params_total = _count([*model.parameters(), *components.strategy.extra_parameters()])
    flop_report = count_flops(model, _first_samples(batch[0], 1)) if flops else None
    engine = step_engine(components, batch, synthetic=synthetic)
    saved = _saved_activations_bytes(engine, batch[0])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(engine, steps=steps, warmup=warmup) if steps else None
    peak, peak_kind = _peak_memory(device)
    compare = compare if compare != config.strategy.name else None
    compare_times = None
    if steps and compare:
        other_config = resolve_sections(attrs.evolve(config, strategy=ComponentConfig(name=compare)), components.registries)
        other = build_strategy(other_config, list(components.tasks), model, components.registries)
        other_engine = step_engine(attrs.evolve(components, strategy=other), batch, synthetic=synthetic)
        compare_times = time_steps(other_engine, steps=steps, warmup=warmup)
    return ProfileResult(
        arch=str(config.arch.name),
        backbone=str(config.backbone.name),
        head=str(config.head.name),
        dataset=str(config.dataset.name),
        strategy=str(config.strategy.name),
        compare=compare,
        device=str(device),
        precision=config.train.precision,
        batch_size=_batch_len(batch[0]),
        input_shape=tuple(components.dataset.input_shape),
        params_total=params_total,
        params_shared=_count(model.shared_parameters()),
        params_per_task={t: _count(model.task_parameters(t)) for t in components.tasks},
        flops=flop_report,
        times=times,
        compare_times=compare_times,
        saved_activations_bytes=saved,
        peak_memory_bytes=peak,
        peak_memory_kind=peak_kind,
    )
