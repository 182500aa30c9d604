"""Per-task gradients w.r.t. the shared parameters: one batched backward vs T backward passes.

``mtlx.gradients.per_task_grads(losses, params, batched=True)`` is one
``autograd.grad`` over one-hot ``grad_outputs`` with ``is_grads_batched``
(a vmap over the backward pass); ``batched=False`` is T ``autograd.grad``
calls. Both run on the same retained graph of one forward (the forward is
not timed) on the two problems of ``conftest.py`` (digits defaults, batch 64;
ResNet-18 at 64x64 with 3 dense conv heads, batch 16), CPU, one thread.

The two methods alternate (each timed batched round is preceded by a looped
one, timed here), so the ratio compares them under the same machine load.
pytest-benchmark's stats are the batched rounds; ``extra_info`` has both
medians and ``batched_over_looped``; ``-s`` prints the table.

    pytest benchmarks/test_bench_grads.py --benchmark-enable -s
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Iterator

import pytest
import torch

from mtlx.gradients import flatten_grads, per_task_grads
from mtlx.testing import make_step

ROUNDS = 5
WARMUP = 1
#: problem -> extra_info of its run
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if RESULTS:
        print("\n\n| model | shared params | T | batched ms | looped ms | batched / looped |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in RESULTS.items():
            print(
                f"| {name} | {r['shared_params']:,} | {r['tasks']} | {r['batched_ms']:.0f} | {r['looped_ms']:.0f} "
                f"| {r['batched_over_looped']:.2f} |"
            )


@pytest.mark.parametrize("bench_problem", ["digits", "resnet18-64"], indirect=True)
def test_batched_vs_looped(benchmark, bench_problem, one_thread):
    problem = bench_problem
    losses = make_step(problem.model, problem.x, problem.targets, problem.tasks).loss_vector()
    params = [p for p in problem.model.shared_parameters() if p.requires_grad]

    def batched() -> torch.Tensor:
        return flatten_grads(per_task_grads(losses, params, batched=True))

    def looped() -> torch.Tensor:
        return flatten_grads(per_task_grads(losses, params, batched=False))

    looped_s: list[float] = []

    def timed_looped() -> None:
        start = time.perf_counter()
        looped()
        looped_s.append(time.perf_counter() - start)

    with warnings.catch_warnings():
        # per_task_grads falls back to the loop with a RuntimeWarning: that would time the loop against itself
        warnings.simplefilter("error", RuntimeWarning)
        torch.testing.assert_close(batched(), looped(), rtol=1e-4, atol=1e-6)
        benchmark.group = "per-task gradients"
        benchmark.pedantic(batched, setup=timed_looped, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    if benchmark.disabled:  # --benchmark-disable: one call each, a smoke test
        return
    batched_ms = statistics.median(benchmark.stats.stats.data) * 1e3
    looped_ms = statistics.median(looped_s[-ROUNDS:]) * 1e3
    benchmark.extra_info.update(
        shared_params=problem.shared_size,
        tasks=len(problem.tasks),
        batch=problem.x.shape[0],
        batched_ms=batched_ms,
        looped_ms=looped_ms,
        batched_over_looped=batched_ms / looped_ms,
    )
    RESULTS[problem.name] = dict(benchmark.extra_info)
