"""Side by side with torchjd 0.18: step time and update direction on the identical model, data and aggregator.

What a user would write with torchjd instead of an mtlx strategy::

    mtl_backward(losses, features=z, tasks_params=..., shared_params=shared)  # Jacobian rows in .jac
    jac_to_grad(shared, aggregator)                                           # aggregated into .grad
    optimizer.step()

Ours is one engine step of the registered strategy (``mtlx_testing.make_step``
forward, ``strategy.backward``, the same Adam step, ``after_step``). Both
start from copies of one model (``conftest.py``: digits defaults, batch 64;
ResNet-18 at 64x64 with 3 dense conv heads, batch 16), CPU, one thread.

- **Step time**: each timed step of ours is preceded by one of torchjd's
  (timed here), so ``ours_over_torchjd`` compares them under the same load.
- **Direction**: from the same parameters and batch, the cosine between the
  shared parameters' ``.grad`` after our ``backward`` and after
  ``mtl_backward`` + ``jac_to_grad`` (in float64: an fp32 dot product over
  11M entries is off by ~1e-2), the ratio of their norms and their relative
  difference.
  Hyperparameters are matched (CAGrad ``rescale=0``: torchjd has no rescale;
  PCGrad's permutations come from the same seed). Heads are not compared:
  torchjd gives every head ∇L_t, our Nash-MTL gives it α_t∇L_t as the paper.

torchjd's CAGrad and Nash-MTL need cvxpy (+ ECOS for Nash-MTL):
``nox -s compare`` installs ``torchjd[cagrad,nash-mtl]``; without it those
two cases are skipped, saying so.

    nox -s compare                                   # or, with cvxpy/ecos installed:
    pytest benchmarks/test_compare_torchjd.py --benchmark-enable -s
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Iterator

import attrs
import pytest
import torch
from torchjd import aggregation
from torchjd.autojac import jac_to_grad, mtl_backward

from mtlx_baselines.plugin import STRATEGIES
from mtlx_testing import make_step

ROUNDS = 5
WARMUP = 1
LR = 1e-3
SEED = 0
#: min cosine accepted as "the same method": a solver that failed or a mismatched option gives far less
MIN_COSINE = 0.99


@attrs.frozen
class Case:
    """Our strategy's options and the torchjd aggregator that computes the same thing."""

    options: dict
    torchjd: Callable[[int], aggregation.Aggregator]  # number of tasks -> a fresh aggregator


CASES = {
    "mgda": Case(options={}, torchjd=lambda T: aggregation.MGDA()),
    "upgrad": Case(options={}, torchjd=lambda T: aggregation.UPGrad()),
    "cagrad": Case(options={"c": 0.5, "rescale": 0}, torchjd=lambda T: aggregation.CAGrad(c=0.5)),
    "pcgrad": Case(options={"seed": SEED}, torchjd=lambda T: aggregation.PCGrad()),
    "nash-mtl": Case(
        options={"update_weights_every": 1, "max_norm": 1.0},
        torchjd=lambda T: aggregation.NashMTL(n_tasks=T, max_norm=1.0, update_weights_every=1),
    ),
}
#: (problem, method) -> extra_info
RESULTS: dict[tuple[str, str], dict] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if RESULTS:
        print(
            "\n\n| model | method | torchjd aggregator | ours ms | torchjd ms | ours / torchjd | 1 − cos(d_ours, d_torchjd) "
            "| ‖d_ours‖ / ‖d_torchjd‖ | ‖d_ours − d_torchjd‖ / ‖d_torchjd‖ |\n|---|---|---|---:|---:|---:|---:|---:|---:|"
        )
        for (model, method), r in RESULTS.items():
            print(
                f"| {model} | {method} | `{r['torchjd_aggregator']}` | {r['ours_ms']:.0f} | {r['torchjd_ms']:.0f} "
                f"| {r['ours_over_torchjd']:.2f} | {1 - r['cosine']:.1e} | {r['norm_ratio']:.6f} "
                f"| {r['relative_difference']:.1e} |"
            )


def torchjd_aggregator(method: str, num_tasks: int) -> aggregation.Aggregator:
    """A fresh torchjd aggregator, or a skip naming the missing optional dependency."""
    try:
        return CASES[method].torchjd(num_tasks)
    except ImportError as error:
        reason = f"torchjd's {method} needs its optional dependencies (nox -s compare installs them): {error}"
        print(f"\nSKIP {method}: {reason}")
        pytest.skip(reason)


def our_strategy(method: str, tasks: list[str]):
    cls = STRATEGIES[method]
    return cls(cls.Config(**CASES[method].options), tasks=tasks)


def our_trainer(problem, method: str) -> Callable[[], None]:
    """One engine step of our strategy per call, on its own copy of the model."""
    model = copy.deepcopy(problem.model)
    strategy = our_strategy(method, list(problem.tasks))
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.extra_parameters()], lr=LR)
    iteration = 0

    def step() -> None:
        nonlocal iteration
        ctx = make_step(model, problem.x, problem.targets, problem.tasks, iteration=iteration)
        optimizer.zero_grad(set_to_none=True)
        strategy.backward(ctx)
        optimizer.step()
        strategy.after_step(ctx)
        iteration += 1

    return step


def torchjd_backward(model, problem, aggregator: aggregation.Aggregator) -> None:
    """The same forward, then torchjd's Jacobian w.r.t. the shared parameters, aggregated into ``.grad``."""
    ctx = make_step(model, problem.x, problem.targets, problem.tasks)
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    mtl_backward(
        list(ctx.losses.values()),
        features=ctx.representation,
        tasks_params=[model.task_parameters(t) for t in problem.tasks],
        shared_params=shared,
    )
    jac_to_grad(shared, aggregator)


def torchjd_trainer(problem, method: str) -> Callable[[], None]:
    model = copy.deepcopy(problem.model)
    aggregator = torchjd_aggregator(method, len(problem.tasks))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torchjd_backward(model, problem, aggregator)
        optimizer.step()

    return step


def shared_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.shared_parameters() if p.requires_grad])


def directions(problem, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared-parameter updates of both from the same parameters and batch (fresh state, same seed)."""
    ours_model, their_model = copy.deepcopy(problem.model), copy.deepcopy(problem.model)
    aggregator = torchjd_aggregator(method, len(problem.tasks))
    our_strategy(method, list(problem.tasks)).backward(make_step(ours_model, problem.x, problem.targets, problem.tasks))
    torch.manual_seed(SEED)  # torchjd's PCGrad draws its permutations from the global RNG, ours from Config.seed
    torchjd_backward(their_model, problem, aggregator)
    return shared_grad(ours_model), shared_grad(their_model)


@pytest.mark.parametrize("method", list(CASES))
@pytest.mark.parametrize("bench_problem", ["digits", "resnet18-64"], indirect=True)
def test_against_torchjd(benchmark, bench_problem, method, one_thread, timed):
    problem = bench_problem
    ours, theirs = (d.double() for d in directions(problem, method))  # fp32 sums over 11M entries drift by 1e-2
    cosine = float(ours @ theirs / (ours.norm() * theirs.norm()))
    norm_ratio = float(ours.norm() / theirs.norm())
    relative_difference = float((ours - theirs).norm() / theirs.norm())
    assert cosine > MIN_COSINE, f"{method}: our update and torchjd's point apart (cos {cosine:.4f})"

    our_step, their_step = our_trainer(problem, method), torchjd_trainer(problem, method)
    timed_torchjd, torchjd_s = timed(their_step)
    benchmark.group = f"vs torchjd: {problem.name}"
    benchmark.pedantic(our_step, setup=timed_torchjd, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    if benchmark.disabled:  # --benchmark-disable: one step each, a smoke test
        return
    ours_ms = statistics.median(benchmark.stats.stats.data) * 1e3
    torchjd_ms = statistics.median(torchjd_s[-ROUNDS:]) * 1e3
    benchmark.extra_info.update(
        torchjd_aggregator=repr(torchjd_aggregator(method, len(problem.tasks))),
        ours_ms=ours_ms,
        torchjd_ms=torchjd_ms,
        ours_over_torchjd=ours_ms / torchjd_ms,
        cosine=cosine,
        norm_ratio=norm_ratio,
        relative_difference=relative_difference,
    )
    RESULTS[(problem.name, method)] = dict(benchmark.extra_info)
