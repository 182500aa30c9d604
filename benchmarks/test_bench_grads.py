"""Per-task gradients w.r.t. the shared parameters: loop vs two-stage vs the straightforward loop.

- ``loop``: ``per_task_grads(losses, params)``, one ``autograd.grad`` per task loss;
- ``two-stage``: ``per_task_grads(losses, params, through=Z)``, T gradients down to Z
  (each through its own head), then one vmapped backward from Z into the encoder
  (``is_grads_batched``; torchjd's ``mtl_backward`` does the same);
- ``straightforward``: ``[torch.autograd.grad(losses[t], params) for t]``, the floor;
- ``LibMTL backward loop``: LibMTL's ``mode='backward'``, T ``backward(retain_graph=True)``
  passes, copying and zeroing ``.grad``.

All three run on the same retained graph of one forward (the forward is not
timed) on the two problems of ``conftest.py`` (digits defaults, batch 64;
ResNet-18 at 64x64 with 3 dense conv heads, batch 16), CPU, one thread, in
interleaved rounds, so the ratios compare them under the same machine load.
``train.per_task_grads=auto`` takes the faster of loop and two-stage per device
(``mtlx.gradients.AUTO_METHOD``) from this table; ``-s`` prints it.

    pytest benchmarks/test_bench_grads.py --benchmark-enable -s
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Iterator

import pytest
import torch

from mtlx.engine.step import forward, task_losses
from mtlx.gradients import flatten_grads, per_task_grads

ROUNDS = 7
WARMUP = 1
#: problem -> medians (ms) of each method
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if RESULTS:
        print("\n\n| model | shared params | T | loop ms | two-stage ms | LibMTL loop ms | straightforward ms "
              "| loop / straightforward | two-stage / straightforward | LibMTL / straightforward |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in RESULTS.items():
            print(
                f"| {name} | {r['shared_params']:,} | {r['tasks']} | {r['loop']:.0f} | {r['two-stage']:.0f} "
                f"| {r['LibMTL backward loop']:.0f} | {r['straightforward']:.0f} "
                f"| {r['loop'] / r['straightforward']:.2f} | {r['two-stage'] / r['straightforward']:.2f} "
                f"| {r['LibMTL backward loop'] / r['straightforward']:.2f} |"
            )


def libmtl_loop(losses: list[torch.Tensor], params: list[torch.nn.Parameter]) -> torch.Tensor:
    """LibMTL's ``mode='backward'``: T ``backward(retain_graph=True)`` passes, copying and zeroing ``.grad``."""
    rows = []
    for loss in losses:
        loss.backward(retain_graph=True)
        rows.append(torch.cat([p.grad.reshape(-1).clone() for p in params]))
        for p in params:
            p.grad = None
    return torch.stack(rows)


@pytest.mark.parametrize("bench_problem", ["digits", "resnet18-64"], indirect=True)
def test_loop_vs_two_stage(benchmark, bench_problem, one_thread):
    problem = bench_problem
    preds, z = forward(problem.model, problem.x)
    losses = list(task_losses(preds, problem.targets, problem.tasks).values())
    params = [p for p in problem.model.shared_parameters() if p.requires_grad]
    methods = {
        "loop": lambda: flatten_grads(per_task_grads(losses, params)),
        "two-stage": lambda: flatten_grads(per_task_grads(losses, params, through=z)),
        "LibMTL backward loop": lambda: libmtl_loop(losses, params),
        "straightforward": lambda: torch.stack(
            [torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])
             for loss in losses]
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in methods}

    def one_round() -> None:
        for name, method in methods.items():
            start = time.process_time()
            method()
            times[name].append(time.process_time() - start)

    with warnings.catch_warnings():
        # two-stage falls back to rows with a RuntimeWarning: that would time the loop against itself
        warnings.simplefilter("error", RuntimeWarning)
        reference = methods["straightforward"]()
        for name in ("loop", "two-stage", "LibMTL backward loop"):
            torch.testing.assert_close(methods[name](), reference, rtol=1e-4, atol=1e-6)
        benchmark.group = "per-task gradients"
        benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    if benchmark.disabled:  # --benchmark-disable: one call each, a smoke test
        return
    medians = {k: 1e3 * statistics.median(v[-ROUNDS:]) for k, v in times.items()}
    benchmark.extra_info.update(shared_params=problem.shared_size, tasks=len(problem.tasks), **medians)
    RESULTS[problem.name] = dict(benchmark.extra_info)
