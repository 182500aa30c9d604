"""LDC-MTL: the objective, its gradients (losses and router) against a naive float64 transcription of the
penalty form written here and hand values, the first-step normalisation carried over steps, conformance
with exact resume, mtlx.MTL = the engine's step, a digits run, bad input.
"""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

import mtlx
from mtlx import ConfigError
from mtlx.config import build_component_config
from mtlx_baselines.plugin import STRATEGIES
from mtlx_testing import (
    ToyModel,
    assert_refused_at_start_up,
    check_strategy,
    invoke_cli,
    make_step,
    toy_batch,
    toy_tasks,
)

TASKS = toy_tasks(3)


def naive_objective(router: list[float], losses: list[float], initial: list[float], lamb: float) -> float:
    """Σ σ_t L_t/L_t(0) + λ Σ |σ_t L_t/L_t(0) − σ_{t+1} L_{t+1}/L_{t+1}(0)|, σ = softmax(router)."""
    exps = [math.exp(w) for w in router]
    sigma = [e / sum(exps) for e in exps]
    weighted = [s * loss / l0 for s, loss, l0 in zip(sigma, losses, initial, strict=True)]
    return sum(weighted) + lamb * sum(abs(a - b) for a, b in itertools.pairwise(weighted))


def central_difference(f, x: list[float], h: float = 1e-6) -> list[float]:
    grads = []
    for i in range(len(x)):
        up, down = x[:], x[:]
        up[i] += h
        down[i] -= h
        grads.append((f(up) - f(down)) / (2 * h))
    return grads


def build(**options):
    cls = STRATEGIES["ldc-mtl"]
    return cls(build_component_config(cls.Config, options, where="strategy 'ldc-mtl'"), tasks=list(TASKS))


def combine(strategy, values: list[float], step):
    losses = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    total, weights = strategy.combine(losses, step)
    loss_grad, router_grad = torch.autograd.grad(total, [losses, strategy.router])
    return total, weights, loss_grad, router_grad


@pytest.fixture
def step():
    torch.manual_seed(0)
    x, targets = toy_batch(TASKS)
    return make_step(ToyModel(TASKS), x, targets, TASKS)


@pytest.mark.parametrize("lamb", [0.0, 0.05, 2.0])
def test_objective_and_gradients_match_the_naive_transcription_over_steps(step, lamb):
    strategy = build(lamb=lamb)
    generator = torch.Generator().manual_seed(1)
    first = [0.5, 3.0, 0.02]
    for it in range(4):  # L(0) stays the first step's; the router moves between steps
        values = first if it == 0 else (torch.rand(3, generator=generator, dtype=torch.float64) * 2).tolist()
        with torch.no_grad():
            strategy.router.copy_(torch.randn(3, generator=generator))
        router = strategy.router.detach().double().tolist()
        total, weights, loss_grad, router_grad = combine(strategy, values, step)
        assert float(total.detach()) == pytest.approx(naive_objective(router, values, first, lamb), rel=1e-6)
        expected_loss_grad = central_difference(lambda v, w=router: naive_objective(w, v, first, lamb), values)
        expected_router_grad = central_difference(lambda w, v=values: naive_objective(w, v, first, lamb), router)
        assert loss_grad.tolist() == pytest.approx(expected_loss_grad, rel=1e-5, abs=1e-7)
        assert weights.tolist() == pytest.approx(expected_loss_grad, rel=1e-5, abs=1e-7)  # the effective weights
        assert router_grad.tolist() == pytest.approx(expected_router_grad, rel=1e-4, abs=1e-6)
    assert strategy.initial_losses.tolist() == first


def test_hand_values(step):
    """L(0) = (2, 4), σ = (½, ½), λ = 0.1. Step 0: ℓ̃ = (1, 1), total 1. Step 1, L = (1, 4): σℓ̃ = (¼, ½),
    total ¾ + 0.1·¼; ∂/∂L = (½·0.9/2, ½·1.1/4); ∂/∂σ = (½ − 0.1·½, 1 + 0.1) through softmax at (½, ½)."""
    cls = STRATEGIES["ldc-mtl"]
    strategy = cls(cls.Config(lamb=0.1), tasks=["a", "b"])
    total, weights, _, router_grad = combine(strategy, [2.0, 4.0], step)
    assert float(total.detach()) == pytest.approx(1.0, abs=1e-7) and router_grad.tolist() == pytest.approx([0, 0], abs=1e-7)
    assert weights.tolist() == pytest.approx([0.25, 0.125], abs=1e-7)  # a tie: no discrepancy term
    total, weights, loss_grad, router_grad = combine(strategy, [1.0, 4.0], step)
    assert float(total.detach()) == pytest.approx(0.775, abs=1e-7)
    assert loss_grad.tolist() == pytest.approx([0.225, 0.1375], abs=1e-7) == weights.tolist()
    assert router_grad.tolist() == pytest.approx([-0.1625, 0.1625], abs=1e-7)


def test_the_router_moves_weight_to_the_task_behind(step):
    """With λ large the discrepancy term dominates: the router's descent raises the weight of the task whose
    normalised weighted loss is lower (σ_t ℓ̃_t pulled together)."""
    strategy = build(lamb=10.0)
    combine(strategy, [1.0, 1.0, 1.0], step)
    _, _, _, router_grad = combine(strategy, [1.0, 0.2, 1.0], step)
    assert router_grad[1] < 0 < router_grad[0] and router_grad[2] > 0


def test_a_non_positive_first_loss_is_refused(step):
    with pytest.raises(ConfigError, match="ldc-mtl needs positive task losses, but task 'reg1' has loss 0"):
        combine(build(), [1.0, 0.0, 1.0], step)


def test_conformance_with_exact_resume():
    check_strategy("ldc-mtl")
    check_strategy("ldc-mtl", {"lamb": 1.0})


def test_a_user_loop_takes_the_engines_step():
    """Same model, batches and strategy: mtlx.MTL.backward and the engine's strategy.backward give equal .grad
    (router included), step after step with L(0) taken at the first."""
    torch.manual_seed(0)
    model = ToyModel(TASKS).double()
    twin = copy.deepcopy(model)
    engine_strategy = build(lamb=0.5)
    mtl = mtlx.MTL("ldc-mtl", tasks=list(TASKS), shared=twin.encoder, heads=dict(twin.heads), lamb=0.5)
    for it in range(3):
        x, targets = toy_batch(TASKS, seed=it)
        for p in [*model.parameters(), *twin.parameters(), engine_strategy.router, *mtl.parameters()]:
            p.grad = None
        engine_strategy.backward(make_step(model, x.double(), targets, TASKS, iteration=it))
        z = twin.encoder(x.double())
        mtl.backward({t: spec.loss(twin.heads[t](z).float(), targets[t]) for t, spec in TASKS.items()}, features=z)
        for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=lambda m, n=name: f"{n}: {m}")
        (router,) = mtl.parameters()
        torch.testing.assert_close(router.grad, engine_strategy.router.grad, rtol=0, atol=0)
        with torch.no_grad():  # the same router step on both sides
            engine_strategy.router -= 0.1 * engine_strategy.router.grad
            router -= 0.1 * router.grad
        mtl.step()


TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-o", "dataset.num_tasks=3"]


@pytest.mark.parametrize(("option", "message"), [("strategy.lamb=-1", "lamb"), ("strategy.lambda=1", "lambda")])
def test_bad_options_are_refused_at_start_up(tmp_path, option, message):
    result = invoke_cli(*TOY, "-s", "ldc-mtl", "-o", option, "-q", "--out", tmp_path / "run")
    assert_refused_at_start_up(result, message, tmp_path / "run")


@pytest.mark.slow
def test_a_digits_run(tmp_path):
    result = invoke_cli("run", "-s", "ldc-mtl", "-d", "digits", "--threads", "1", "--device", "cpu", "-q",
                        "-o", "dataset.train_size=256", "-o", "dataset.val_size=64", "-o", "dataset.test_size=64",
                        "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "results.json").exists()
