"""Step time and peak memory of rep-mtl against ew on the same model and batch (CPU).

One step = the engine's forward (:func:`mtlx_testing.make_step`) plus the
strategy's ``backward`` (no optimiser). Variants: ``ew``, ``rep-mtl:paper``
(fixed λ; its first step also checks the gradient balance, outside the timed
rounds) and ``rep-mtl`` (balanced, the default; re-estimates its λ every 50
steps: the rounds here are between estimates, the estimate's own cost is the
``rep-mtl:estimate`` row, one estimating step). Cases:

- ``toy``: :class:`mtlx_testing.ToyModel` (Z = [8, 8, 16, 16], 3 tasks);
- ``digits`` and ``resnet18-64`` from ``benchmarks/conftest.py``: the default
  ``mtlx run`` model (hps + digits-cnn + conv heads, Z = [64, 64, 16, 16]) on a
  real digits batch of 64, and a ResNet-18 trunk at 64x64 with 3 dense conv
  heads (Z = [16, 512, 2, 2]), batch 16;
- ``resnet-512`` / ``resnet-2048``: a ResNet-sized representation
  (Z = [B, C, 32, 32], N = 1024) from a cheap 1x1-conv encoder with light
  1x1-conv heads, where the saliency regularisers dominate.

Torch runs single-threaded so that ratios are comparable on a shared machine;
``extra_info`` holds the best CPU time (``time.process_time``, robust to a busy
machine), the peak memory a step adds to what is live at its start
(``peak_mb`` of ``conftest.py``: torch profiler allocation events) and the FLOPs (``torch.utils.flop_counter``). A ratio table (to ew) is
printed at the end of the module::

    pytest benchmarks/test_bench_repmtl.py --benchmark-enable --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

import mtlx
from mtlx_repmtl import RepMTL, RepMTLConfig
from mtlx_testing import EncoderHeads, ToyModel, make_step, toy_batch, toy_tasks

#: the installed plugins' registries: where EW and Rep-MTL's base weighting come from, as in a run
INSTALLED = mtlx.PluginManager().registries


def _rep_mtl(**options: Any) -> Callable[[list[str]], mtlx.MTOStrategy]:
    return lambda tasks: RepMTL.from_registries(RepMTLConfig(**options), tasks=tasks, registries=INSTALLED)


def _ew(tasks: list[str]) -> mtlx.MTOStrategy:
    cls = INSTALLED.strategies.get("ew")
    return cls(cls.Config(), tasks=tasks)


VARIANTS: dict[str, Callable[[list[str]], mtlx.MTOStrategy]] = {
    "ew": _ew,
    "rep-mtl:paper": _rep_mtl(mode="paper"),
    "rep-mtl": _rep_mtl(),
    "rep-mtl:estimate": _rep_mtl(estimate_every=1),
}


@attrs.frozen
class Case:
    model: mtlx.MultiTaskModel
    x: torch.Tensor
    targets: dict[str, torch.Tensor]
    tasks: dict[str, mtlx.TaskSpec]
    rounds: int


class WideRepresentation(EncoderHeads):
    """1x1-conv encoder to C channels at full resolution, light heads: the regularisers' cost dominates."""

    @attrs.frozen
    class Config:
        channels: int = 512

    def __init__(self, tasks: Mapping[str, mtlx.TaskSpec], channels: int):
        super().__init__(tasks)
        self.encoder = nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU(), nn.Conv2d(64, channels, 1))
        self.heads = nn.ModuleDict(
            {t: nn.Sequential(nn.Tanh(), nn.Conv2d(channels, s.out_channels, 1)) for t, s in tasks.items()}
        )


def _toy() -> Case:
    tasks = toy_tasks(3)
    x, targets = toy_batch(tasks, batch_size=8, size=16)
    return Case(ToyModel(tasks), x, targets, tasks, rounds=30)


def _wide(channels: int, batch: int) -> Callable[[], Case]:
    def make() -> Case:
        tasks = toy_tasks(3)
        x, targets = toy_batch(tasks, batch_size=batch, size=32)
        return Case(WideRepresentation(tasks, channels), x, targets, tasks, rounds=3)

    return make


CASES: dict[str, Callable[[], Case]] = {
    "toy": _toy,
    "resnet-512": _wide(512, 8),
    "resnet-2048": _wide(2048, 4),
}
#: Problems of ``benchmarks/conftest.py`` (the ``bench_problem`` fixture), shared with the other suites.
SHARED_PROBLEMS = ["digits", "resnet18-64"]
SHARED_ROUNDS = 5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cases() -> Callable[[str], Case]:
    """Each case of :data:`CASES` built once (seeded), on first use."""
    built: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in built:
            torch.manual_seed(0)
            built[name] = CASES[name]()
        return built[name]

    return get


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[dict[str, dict]]:
    """Collects the numbers of every test and prints the ratio and breakdown tables when the module ends."""
    results: dict[str, dict] = {"ratios": {}, "breakdown": {}}
    yield results
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled():
        if results["ratios"]:
            _print_ratios(reporter.write_line, results["ratios"])
        if results["breakdown"]:
            _print_breakdown(reporter.write_line, results["breakdown"])


def _print_ratios(write: Callable[[str], None], results: dict[str, dict[str, dict[str, float]]]) -> None:
    write("")
    write("step / ew step (best of rounds; 1 thread)")
    header = f"{'case':<12} {'variant':<16} {'wall ms':>9} {'x ew':>6} {'cpu ms':>9} {'x ew':>6} "
    write(header + f"{'peak MB':>9} {'x ew':>6} {'MFLOP':>9} {'x ew':>6}")
    for case, variants in results.items():
        base = variants.get("ew")
        for variant, r in variants.items():
            cells = [f"{case:<12} {variant:<16}"]
            for key in ("wall_ms", "cpu_ms", "peak_mb", "mflop"):
                ratio = r[key] / base[key] if base and base[key] else float("nan")
                cells.append(f"{r[key]:>9.1f} {ratio:>6.2f}")
            write(" ".join(cells))


def _print_breakdown(write: Callable[[str], None], results: dict[str, dict[str, float]]) -> None:
    write("")
    write("where a rep-mtl step's time goes (profiler CPU ms, best of rounds; share of the step)")
    write(f"{'case':<12} " + " ".join(f"{region:>22}" for region in REGIONS))
    for case, times in results.items():
        step = sum(times.values())
        write(f"{case:<12} " + " ".join(f"{times[r]:>14.1f} ({times[r] / step:>4.0%})" for r in REGIONS))


def _mflop(fn: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e6


def _measure(
    benchmark, report: dict, peak_mb: Callable[[Callable[[], None]], float], name: str, problem: Any, variant: str,
    rounds: int,
) -> None:
    """Time ``rounds`` steps of ``variant`` on ``problem`` (model, x, targets, tasks); record peak memory and FLOPs."""
    strategy = VARIANTS[variant](list(problem.tasks))
    cpu_times: list[float] = []
    iteration = iter(range(10**9))

    def step() -> None:  # successive iterations, as in training (balanced mode estimates by iteration)
        start = time.process_time()
        problem.model.zero_grad(set_to_none=True)
        strategy.backward(make_step(problem.model, problem.x, problem.targets, problem.tasks, iteration=next(iteration)))
        cpu_times.append(time.process_time() - start)

    benchmark.group = f"step: {name}"
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    assert all(torch.isfinite(p.grad).all() for p in problem.model.parameters() if p.grad is not None)
    numbers = {"cpu_ms": 1e3 * min(cpu_times), "peak_mb": peak_mb(step), "mflop": _mflop(step)}
    numbers["wall_ms"] = 1e3 * benchmark.stats.stats.min if benchmark.stats else numbers["cpu_ms"]
    benchmark.extra_info.update(numbers)
    report["ratios"].setdefault(name, {})[variant] = numbers


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("bench_problem", SHARED_PROBLEMS, indirect=True)
def test_step_shared_problem(benchmark, bench_problem, report, peak_mb, variant: str) -> None:
    _measure(benchmark, report, peak_mb, bench_problem.name, bench_problem, variant, SHARED_ROUNDS)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", list(CASES))
def test_step(benchmark, cases, report, peak_mb, case: str, variant: str) -> None:
    c = cases(case)
    _measure(benchmark, report, peak_mb, case, c, variant, c.rounds)


#: Profiler regions of a rep-mtl step: the engine's forward, then the strategy's labelled blocks.
REGIONS = ("forward", "rep-mtl/saliency", "rep-mtl/regularisers", "rep-mtl/backward")


def _breakdown(report: dict, name: str, problem: Any) -> None:
    """Profile the default rep-mtl step: forward, saliencies, regularisers, the one (second-order) backward."""
    strategy = VARIANTS["rep-mtl"](list(problem.tasks))
    best: dict[str, float] = {}
    for _ in range(3):
        problem.model.zero_grad(set_to_none=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            with record_function("forward"):
                step = make_step(problem.model, problem.x, problem.targets, problem.tasks)
            strategy.backward(step)
        totals = {e.key: e.cpu_time_total / 1e3 for e in prof.key_averages() if e.key in REGIONS}
        best = {r: min(best.get(r, float("inf")), totals[r]) for r in REGIONS}
    report["breakdown"][name] = best


@pytest.mark.parametrize("bench_problem", SHARED_PROBLEMS, indirect=True)
def test_where_the_time_goes_shared_problem(bench_problem, report) -> None:
    _breakdown(report, bench_problem.name, bench_problem)


def test_where_the_time_goes_wide(cases, report) -> None:
    _breakdown(report, "resnet-512", cases("resnet-512"))
