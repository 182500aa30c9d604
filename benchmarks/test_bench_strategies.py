"""Per-step cost of every baseline strategy relative to EW, and batched vs looped per-task gradients.

Not part of the default test run. Run (prints the markdown tables of
plugins/baselines/README.md at the end)::

    pytest benchmarks/test_bench_strategies.py --benchmark-enable -s

One model for everything: the ``digits`` defaults (``digits-cnn`` backbone,
``conv`` heads, ``hps``; 3 tasks, 56k shared parameters), one batch of 64,
CPU, one thread. A step is what the engine does: forward,
``strategy.backward``, optimiser step, ``after_step``. Strategies are first
taken past their warm-ups (DWA's two epochs, GradNorm's epoch 0, STCH with
``warmup_epoch=0``). Every timed step of a strategy is preceded by an
(untimed by pytest-benchmark, timed here) EW step on a twin model, so the
ratio compares the two under the same machine load.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator

import pytest
import torch

from mtlx.build import build_dataset, build_model, resolve_run_config
from mtlx.gradients import flatten_grads, per_task_grads
from mtlx.testing import make_step
from mtlx_baselines.plugin import STRATEGIES

ROUNDS = 7
OPTIONS = {"stch": {"warmup_epoch": 0}}
#: strategy -> (median ms / step, median ms of the interleaved EW steps); method -> median ms
RESULTS: dict[str, dict] = {"strategies": {}, "gradients": {}}


@pytest.fixture(scope="module")
def problem():
    torch.set_num_threads(1)  # a shared machine: one thread gives stable timings
    config = resolve_run_config([{"dataset.name": "digits", "strategy.name": "ew", "dataset.train_size": 64,
                                  "dataset.val_size": 8, "dataset.test_size": 8}])
    dataset = build_dataset(config)
    torch.manual_seed(0)
    model = build_model(config, dataset.tasks, dataset.input_shape)
    split = dataset.split("train")
    x, targets = torch.utils.data.default_collate([split[i] for i in range(64)])
    return model, dict(dataset.tasks), x, targets


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    strategies, gradients = RESULTS["strategies"], RESULTS["gradients"]
    if strategies:
        print("\n\n| strategy | ms / step | EW ms / step (interleaved) | × EW |\n|---|---:|---:|---:|")
        for name, (ms, ew_ms) in strategies.items():
            print(f"| {name} | {ms:.0f} | {ew_ms:.0f} | {ms / ew_ms:.2f} |")
    if gradients:
        first = next(iter(gradients.values()))
        print("\n| per-task gradients (T=3) | ms | × batched |\n|---|---:|---:|")
        for name, ms in gradients.items():
            print(f"| {name} | {ms:.1f} | {ms / first:.2f} |")


def median_ms(benchmark) -> float | None:
    """Median of the timed rounds; None under ``--benchmark-disable`` (each body then runs once, as a smoke test)."""
    return None if benchmark.disabled else statistics.median(benchmark.stats.stats.data) * 1e3


def trainer(problem, name: str) -> Callable[[int], None]:
    """A closure doing one engine step of strategy ``name`` on its own copy of the model."""
    base, tasks, x, targets = problem
    model = copy.deepcopy(base)
    cls = STRATEGIES[name]
    strategy = cls(cls.Config(**OPTIONS.get(name, {})), tasks=list(tasks))
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.extra_parameters()], lr=1e-3)
    iteration = 0

    def step(epoch: int = 2) -> None:
        nonlocal iteration
        ctx = make_step(model, x, targets, tasks, iteration=iteration)
        ctx.epoch = epoch
        optimizer.zero_grad(set_to_none=True)
        strategy.backward(ctx)
        optimizer.step()
        strategy.after_step(ctx)
        iteration += 1

    for epoch in (0, 1):  # past the warm-ups
        step(epoch)
        strategy.on_epoch_end(epoch, {t: 1.0 + epoch for t in tasks})
    return step


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_step_time(benchmark, problem, name):
    step, ew_step = trainer(problem, name), trainer(problem, "ew")
    ew_times: list[float] = []

    def timed_ew() -> None:
        start = time.perf_counter()
        ew_step()
        ew_times.append(time.perf_counter() - start)

    benchmark.group = "step"
    benchmark.pedantic(step, setup=timed_ew, rounds=ROUNDS, warmup_rounds=2, iterations=1)
    if (ms := median_ms(benchmark)) is not None:
        RESULTS["strategies"][name] = (ms, statistics.median(ew_times[2:]) * 1e3)


def libmtl_loop(losses: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    """LibMTL's ``mode='backward'``: T ``backward(retain_graph=True)`` passes, copying and zeroing ``.grad``."""
    rows = []
    for t in range(losses.shape[0]):
        losses[t].backward(retain_graph=True)
        rows.append(torch.cat([p.grad.reshape(-1).clone() for p in params]))
        for p in params:
            p.grad = None
    return torch.stack(rows)


@pytest.mark.parametrize("method", ["batched (is_grads_batched)", "looped autograd.grad", "LibMTL backward loop"])
def test_per_task_gradients(benchmark, problem, method):
    model, tasks, x, targets = problem
    losses = make_step(model, x, targets, tasks).loss_vector()
    params = [p for p in model.shared_parameters() if p.requires_grad]
    compute = {
        "batched (is_grads_batched)": lambda: flatten_grads(per_task_grads(losses, params, batched=True)),
        "looped autograd.grad": lambda: flatten_grads(per_task_grads(losses, params, batched=False)),
        "LibMTL backward loop": lambda: libmtl_loop(losses, params),
    }[method]
    reference = flatten_grads(per_task_grads(losses, params, batched=False))
    assert torch.allclose(compute(), reference, atol=1e-6)
    benchmark.group = "per-task gradients"
    benchmark.pedantic(compute, rounds=ROUNDS * 2, warmup_rounds=2, iterations=1)
    if (ms := median_ms(benchmark)) is not None:
        RESULTS["gradients"][method] = ms
