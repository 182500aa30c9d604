"""Step time, phase split and peak memory of every strategy relative to EW (per-task gradient methods:
``test_bench_grads.py``; mtlx against the straightforward step: ``test_bench_floor.py``).

Not part of the default test run. Run (prints the Markdown tables of
plugins/baselines/README.md at the end; ``nox -s bench`` runs it with the other suites)::

    pytest benchmarks/test_bench_strategies.py --benchmark-enable -s

Strategies: every one of ``mtlx_baselines.plugin.STRATEGIES`` plus
``rep-mtl``, on both problems of ``benchmarks/conftest.py`` (``digits``,
``resnet18-64``), CPU, one thread. A step is what the engine does:
``zero_grad``, forward and task losses, ``strategy.backward``, optimiser
(Adam) step, ``after_step``, under the engine's profiler labels
(:mod:`mtlx.phases`). Strategies are first taken past their warm-ups (DWA's
two epochs, GradNorm's epoch 0, STCH with ``warmup_epoch=0``).

Per strategy and problem:

- step time: every timed step is preceded by a step of EW on a twin model
  (timed here, untimed by pytest-benchmark); "x EW" is the median over the
  rounds of the ratio of the two adjacent steps, so a change of machine load
  between rounds cancels;
- phase split of one profiled step: forward, per-task gradients
  (``mtlx/per-task-grads``), aggregation (the rest of ``strategy.backward``:
  the strategy's own computation), backward (``mtlx/backward``: the
  StepContext backward passes and the write of the shared gradient),
  optimiser + ``after_step``;
- peak memory of one step (``peak_mb`` of conftest: torch profiler memory
  events), and its ratio to EW's.

Everything lands in ``benchmark.extra_info`` (the JSON of ``nox -s bench``).
"""

from __future__ import annotations

import contextlib
import copy
import statistics
from collections.abc import Callable, Iterator

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from mtlx import MTOStrategy, PluginManager, phases
from mtlx.interfaces.strategy import take_optimizer_step
from mtlx.phases import phase
from mtlx_baselines.plugin import STRATEGIES as BASELINES
from mtlx_repmtl import RepMTL
from mtlx_testing import make_step

pytestmark = pytest.mark.usefixtures("one_thread")

STRATEGIES: dict[str, type[MTOStrategy]] = {**BASELINES, "rep-mtl": RepMTL}
#: the installed plugins' registries: where a strategy that names another (rep-mtl's base) finds it, as in a run
INSTALLED = PluginManager().registries
OPTIONS = {"stch": {"warmup_epoch": 0}}
PROBLEMS = ["digits", "resnet18-64"]
#: timed rounds (after one warm-up round): a stable median, the module within ~15 min on a loaded 2-core CPU
ROUNDS = 7
WARMUP = 1
PHASES = ("forward", "per-task grads", "aggregation", "backward", "optimiser + after_step")
#: problem -> strategy -> numbers
RESULTS: dict[str, dict] = {"strategies": {}}

Step = Callable[..., None]


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints the Markdown tables when the module ends, with or without ``-s`` (so ``nox -s bench`` shows them)."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if RESULTS["strategies"]:
            _print_ratios(RESULTS["strategies"])
            _print_phases(RESULTS["strategies"])


def _print_ratios(results: dict[str, dict[str, dict]]) -> None:
    for problem, rows in results.items():
        print(f"\n\n{problem}: step time and peak memory relative to EW\n")
        print("| strategy | ms / step | EW ms / step (interleaved) | × EW | peak MB | × EW |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in rows.items():
            print(f"| {name} | {r['ms']:.0f} | {r['ew_ms']:.0f} | {r['x_ew']:.2f} | {r['peak_mb']:.1f} "
                  f"| {r['peak_x_ew']:.2f} |")


def _print_phases(results: dict[str, dict[str, dict]]) -> None:
    for problem, rows in results.items():
        print(f"\n{problem}: where a step's time goes (ms and share of one profiled step)\n")
        print("| strategy | step ms | " + " | ".join(PHASES) + " |")
        print("|---|---:|" + "---:|" * len(PHASES))
        for name, r in rows.items():
            cells = " | ".join(f"{r['phases_ms'][p]:.0f} ({r['phases_share'][p]:.0%})" for p in PHASES)
            print(f"| {name} | {sum(r['phases_ms'].values()):.0f} | {cells} |")


def median_ms(benchmark) -> float | None:
    """Median of the timed rounds; None under ``--benchmark-disable`` (each body then runs once, as a smoke test)."""
    return None if benchmark.disabled else statistics.median(benchmark.stats.stats.data) * 1e3


def trainer(problem, name: str) -> Step:
    """A closure doing one engine step of strategy ``name`` on its own copy of the model, labelled as the engine does."""
    model = copy.deepcopy(problem.model)
    cls = STRATEGIES[name]
    options = {**cls.example_options(problem.tasks), **OPTIONS.get(name, {})}  # fixed's required weights
    strategy = cls.from_registries(cls.Config(**options), tasks=list(problem.tasks), registries=INSTALLED)
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.extra_parameters()], lr=1e-3)
    iteration = 0
    # MoDo, SDMGrad: k batches per step (the problem's own batch again: the same cost as k independent ones)
    extra_batches = [(problem.x, problem.targets)] * (strategy.batches_per_step - 1)
    # Auto-Lambda: a held-out batch per step (the problem's batch again: the same cost as another one)
    heldout = (problem.x, problem.targets) if strategy.heldout_split is not None else None

    def step(epoch: int = 2) -> None:
        nonlocal iteration
        optimizer.zero_grad(set_to_none=True)
        with phase(phases.FORWARD):
            ctx = make_step(model, problem.x, problem.targets, problem.tasks, iteration=iteration,
                            extra_batches=extra_batches, heldout_batch=heldout,
                            learning_rate=optimizer.param_groups[0]["lr"])
        ctx.epoch = epoch
        with phase(phases.STRATEGY):
            strategy.backward(ctx)
        with phase(phases.OPTIMIZER):
            take_optimizer_step(strategy, ctx, optimizer)  # the engine's: MTAdam owns the step
            strategy.after_step(ctx)
        iteration += 1

    for epoch in (0, 1):  # past the warm-ups
        step(epoch)
        strategy.on_epoch_end(epoch, {t: 1.0 + epoch for t in problem.tasks})
    return step


@pytest.fixture(scope="module")
def ew_twin(bench_problem) -> Step:
    """The EW steps interleaved with every strategy's of one problem (one twin model, taken past its warm-up once)."""
    return trainer(bench_problem, "ew")


# -- the phase split of one profiled step ------------------------------------------------------
Spans = list[tuple[float, float]]


def _union(spans: Spans) -> Spans:
    """Disjoint, sorted spans covering the same time (nested or overlapping regions count once)."""
    merged: Spans = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(spans: Spans) -> float:
    return sum(end - start for start, end in spans)


def _overlap(a: Spans, b: Spans) -> float:
    """Time covered by both unions ``a`` and ``b``."""
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def phase_split(step: Step) -> dict[str, float]:
    """Milliseconds per phase of one profiled ``step`` (see the module docstring); the phases do not overlap."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    labels = (phases.FORWARD, phases.STRATEGY, phases.PER_TASK_GRADS, phases.BACKWARD, phases.OPTIMIZER)
    regions: dict[str, Spans] = {label: [] for label in labels}
    for event in prof.events():
        if event.name in regions:
            regions[event.name].append((event.time_range.start / 1e3, event.time_range.end / 1e3))
    spans = {label: _union(r) for label, r in regions.items()}
    strategy = spans[phases.STRATEGY]
    grads = _overlap(spans[phases.PER_TASK_GRADS], strategy)
    backward = _overlap(spans[phases.BACKWARD], strategy)
    both = _overlap(spans[phases.PER_TASK_GRADS], spans[phases.BACKWARD])
    assert both == 0, f"{phases.PER_TASK_GRADS} and {phases.BACKWARD} overlap by {both:.3f} ms: they would count twice"
    return {
        "forward": _length(spans[phases.FORWARD]),
        "per-task grads": grads,
        "aggregation": _length(strategy) - grads - backward,
        "backward": backward,
        "optimiser + after_step": _length(spans[phases.OPTIMIZER]),
    }


# -- the benchmarks --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("bench_problem", PROBLEMS, indirect=True)
def test_step_time(benchmark, bench_problem, ew_twin, peak_mb, timed, name):
    problem = bench_problem
    step, ew_step = trainer(problem, name), ew_twin
    timed_ew, ew_times = timed(ew_step)
    benchmark.group = f"step: {problem.name}"
    benchmark.pedantic(step, setup=timed_ew, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    phases_ms = phase_split(step)
    ew_peak = peak_mb(ew_step)
    numbers = {
        "model": problem.name,
        "strategy": name,
        "phases_ms": phases_ms,
        "phases_share": {p: ms / sum(phases_ms.values()) for p, ms in phases_ms.items()},
        "peak_mb": (peak := peak_mb(step)),
        "ew_peak_mb": ew_peak,
        "peak_x_ew": peak / ew_peak,
    }
    if (ms := median_ms(benchmark)) is not None:
        ew_times = ew_times[WARMUP:]  # round i: ew_times[i], then the strategy's step
        ratios = [t / ew for t, ew in zip(benchmark.stats.stats.data, ew_times, strict=True)]
        numbers |= {"ms": ms, "ew_ms": statistics.median(ew_times) * 1e3, "x_ew": statistics.median(ratios),
                    "rounds": ROUNDS}
        RESULTS["strategies"].setdefault(problem.name, {})[name] = numbers
    benchmark.extra_info.update(numbers)
