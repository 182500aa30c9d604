"""MOML and FORUM: bilevel task weighting from a held-out batch per step (``MTOStrategy.heldout_split``).

At float64 on the toy model: MOML's hyper-gradients against autograd through a deep-copied model whose
parameters are θ'(α) (no closed form), its step against a naive loop (torch Adam, scipy's SLSQP for MGDA);
FORUM's problem (14) against hand values and scipy's SLSQP, its update against a literal transcription of the
released ``train_FORUM`` (a deep-copied model trained by torch SGD for the inner steps, ∂/∂α by autograd, the
QP by scipy); then AMP loss scaling, conformance (exact resume included), mtlx.MTL = the engine's step, digits
runs resumed, and the one-line start-up refusal of a dataset without the held-out split.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn
from torch.utils.data import StackDataset

from mtlx import StepContext
from mtlx.checkpoint import load_checkpoint
from mtlx.data import EpochLoader
from mtlx.engine import Engine, State
from mtlx.engine.step import forward
from mtlx_baselines.strategies import forum, moml
from mtlx_testing import (
    ToyModel,
    assert_resume_is_exact,
    check_strategy,
    engine_states_on_one_and_two_processes,
    toy_batch,
    toy_tasks,
)

TASKS = toy_tasks(3)
NAMES = list(TASKS)
T = len(NAMES)


def f64(seed: int):
    x, targets = toy_batch(TASKS, seed=seed)
    return x.double(), {t: y.double() if y.is_floating_point() else y for t, y in targets.items()}


def model64(seed: int = 0) -> ToyModel:
    torch.manual_seed(seed)
    return ToyModel(TASKS).double()


def losses_of(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    x, targets = batch
    preds, _ = forward(model, x)
    return {t: TASKS[t].loss(preds[t], targets[t]) for t in TASKS}


def step_of(model: nn.Module, train, held, *, epoch: int = 0) -> StepContext:
    return StepContext(model=model, losses=losses_of(model, train), epoch=epoch, learning_rate=0.1,
                       recompute_losses=torch.no_grad()(lambda: losses_of(model, train)),
                       train_losses=lambda: losses_of(model, train), heldout_losses=lambda: losses_of(model, held))


def flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """∇ loss flattened over ``params``, zero for those it does not read (the other tasks' heads)."""
    found = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, found, strict=True)])


def with_parameters(model: nn.Module, flat: torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` whose parameters are replaced by slices of ``flat`` (graph kept: θ'(α))."""
    twin = copy.deepcopy(model)
    start = 0
    for name, p in list(twin.named_parameters()):
        owner, _, attr = name.rpartition(".")
        module = twin.get_submodule(owner)
        del module._parameters[attr]
        setattr(module, attr, flat[start:start + p.numel()].view_as(p))
        start += p.numel()
    return twin


def simplex_min_norm(K: np.ndarray) -> np.ndarray:
    """argmin over the simplex of γᵀKγ, exactly, by enumerating the faces: on each support S, the KKT system
    ``K_SS γ_S = μ 1, Σ γ_S = 1``; the best feasible one (γ_S ≥ 0) over every S."""
    n, best, best_value = len(K), None, np.inf
    for mask in range(1, 2**n):
        support = [i for i in range(n) if mask >> i & 1]
        m = len(support)
        kkt = np.block([[K[np.ix_(support, support)], -np.ones((m, 1))], [np.ones((1, m)), np.zeros((1, 1))]])
        try:
            solution = np.linalg.solve(kkt, np.concatenate([np.zeros(m), [1.0]]))
        except np.linalg.LinAlgError:
            continue
        gamma = np.zeros(n)
        gamma[support] = solution[:m]
        if gamma.min() >= -1e-12 and gamma @ K @ gamma < best_value:
            best, best_value = gamma, gamma @ K @ gamma
    assert best is not None
    return best


def problem_14_by_scipy(K: np.ndarray, pi: np.ndarray, c: float) -> np.ndarray:
    scale = np.trace(K)
    Kn, cn, n = K / scale, c / scale, len(K)
    found = minimize(lambda w: w @ Kn @ w - cn * w[-1], np.concatenate([np.full(n - 1, 1 / (n - 1)), [1.0]]),
                     jac=lambda w: 2 * Kn @ w - cn * np.eye(n)[-1], method="SLSQP", bounds=[(0, None)] * n,
                     constraints=[{"type": "eq", "fun": lambda w: w[:-1].sum() - 1},
                                  {"type": "ineq", "fun": lambda w: w[-1] - pi @ w[:-1]}],
                     options={"ftol": 1e-16, "maxiter": 1000})
    return found.x


# -- MOML -----------------------------------------------------------------------------------------------------


def naive_moml_hypergradients(model, train, held, logits: torch.Tensor, eta: float) -> torch.Tensor:
    """∂ L^val_t(θ − η softmax(α)ᵀ G_f) / ∂α by autograd through a model copy holding θ'(α)."""
    alpha = logits.detach().clone().requires_grad_()
    params = list(model.parameters())
    losses = losses_of(model, train)
    g_f = torch.stack([flat_grad(losses[t], params) for t in NAMES]).detach()
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    virtual = with_parameters(model, theta - eta * torch.softmax(alpha, 0) @ g_f)
    val = losses_of(virtual, held)
    return torch.stack([torch.autograd.grad(val[t], alpha, retain_graph=True)[0] for t in NAMES])


@pytest.mark.parametrize("seed", range(2))
def test_moml_hypergradients_are_autograd_through_the_virtual_step(seed):
    model, train, held = model64(seed), f64(seed), f64(100 + seed)
    logits = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    got = moml.hypergradients(step_of(model, train, held), torch.softmax(logits, 0), 0.4)
    want = naive_moml_hypergradients(model, train, held, logits, 0.4)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)
    assert float(want.abs().max()) > 1e-4  # a test that could fail: H is not ~0
    torch.testing.assert_close(got.sum(1), torch.zeros(T, dtype=torch.float64), rtol=0, atol=1e-14)  # J_s 1 = 0


@pytest.mark.parametrize("aggregation", ["mgda", "ew"])
def test_moml_steps_alpha_by_adam_on_the_aggregated_hypergradient(aggregation):
    eta, lr = 0.3, 0.05
    model = model64(3)
    strategy = moml.MOML(moml.MOML.Config(eta=eta, lr=lr, aggregation=aggregation), tasks=NAMES)
    alpha = torch.nn.Parameter(torch.full((T,), 1 / T, dtype=torch.float64))
    adam = torch.optim.Adam([alpha], lr=lr)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    # H's rows are ⟂ 1 (J_s 1 = 0): with 3 tasks, 0 is often in their convex hull and MGDA's h is 0 up to rounding,
    # which Adam turns into steps of ~lr·|rounding|/ε (ε = 1e-8): agreement to 1e-6 there, to rounding for ew
    tol = {"rtol": 1e-5, "atol": 1e-6} if aggregation == "mgda" else {"rtol": 1e-10, "atol": 1e-12}
    for it in range(3):
        train, held = f64(10 + it), f64(20 + it)
        sgd.zero_grad()
        twin = copy.deepcopy(model)
        H = naive_moml_hypergradients(twin, train, held, alpha.detach(), eta)
        gamma = simplex_min_norm((H @ H.T).numpy()) if aggregation == "mgda" else np.ones(T)
        alpha.grad = torch.from_numpy(gamma) @ H
        adam.step()
        result = strategy.backward(step_of(model, train, held))
        torch.testing.assert_close(strategy.alpha.logits.detach(), alpha.detach(), **tol)
        weights = torch.softmax(alpha.detach(), 0)
        torch.testing.assert_close(torch.tensor(list(result.weights.values()), dtype=torch.float64), weights, **tol)
        losses = losses_of(twin, train)
        sum(weights[i] * losses[t] for i, t in enumerate(NAMES)).backward()
        for (n, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=tol["rtol"], atol=tol["atol"] * 1e-2, msg=n)
        sgd.step()
    assert float(alpha.detach().std()) > 1e-3  # the weights moved apart


# -- FORUM ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.5, 4.0])
def test_problem_14_by_hand_orthogonal_gradients(q):
    """ĝ_1 ⟂ ĝ_2 unit, g_q ⟂ both with ‖g_q‖² = q: π = ρ, and w = (½, ½, max(ρ(q + 1e-8)/2q, ρ)) = (½, ½, ρ)."""
    rho = 0.1
    w = forum.solve_problem_14(np.diag([1.0, 1.0, q]), np.array([rho, rho]), rho * (q + 1e-8))
    np.testing.assert_allclose(w, [0.5, 0.5, rho], rtol=1e-9, atol=1e-12)


def test_problem_14_by_hand_the_linear_term_wins():
    """One task, K = [[1, 0], [0, 1]], π = −1, c = 4: w_1 = 1 and w_q = c/2 = 2 (the bound w_q ≥ −1 inactive)."""
    w = forum.solve_problem_14(np.eye(2), np.array([-1.0]), 4.0)
    np.testing.assert_allclose(w, [1.0, 2.0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_problem_14_matches_scipy_on_random_gradients(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(T + 1, 7))
    K, pi = A @ A.T, rng.normal(size=T) * 0.5
    c = 0.1 * (K[-1, -1] + 1e-8)
    got, want = forum.solve_problem_14(K, pi, c), problem_14_by_scipy(K, pi, c)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got[:-1].sum() == pytest.approx(1.0) and got[-1] >= pi @ got[:-1] - 1e-9


def naive_forum(model, lower, upper, logits, lambdas, *, epoch, rho, eta, inner_steps):
    """``train_FORUM``'s step, literally (lower level, f and its inner steps: batch ``lower``; upper level, the
    F_t: batch ``upper``); returns (α's gradient, θ's gradient, λ)."""
    alpha = nn.Parameter(logits.detach().clone())
    params = list(model.parameters())
    f = torch.softmax(alpha, 0) @ torch.stack(list(losses_of(model, lower).values()))
    g_f = flat_grad(f, [alpha, *params])
    inner = copy.deepcopy(model)
    optimizer = torch.optim.SGD(inner.parameters(), lr=eta, weight_decay=0)
    for _ in range(inner_steps):
        loss = torch.softmax(alpha, 0) @ torch.stack(list(losses_of(inner, lower).values()))
        if loss.item() > 1e5:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    loss = torch.softmax(alpha, 0) @ torch.stack(list(losses_of(inner, lower).values()))
    (g_hat,) = torch.autograd.grad(loss, [alpha])
    g_q = g_f.clone()
    g_q[:T] -= g_hat
    F = losses_of(model, upper)
    G = torch.stack([flat_grad(F[t], params) for t in NAMES])
    G = G / (1e-8 + G.norm(dim=1, keepdim=True))
    G = torch.cat([torch.zeros(T, T, dtype=G.dtype), G], 1)
    pi = np.array([rho - float(g_q @ G[t]) / (float(g_q.norm()) ** 2 + 1e-8) for t in range(T)])
    A = torch.cat([G, g_q[None]]).detach()
    w = problem_14_by_scipy((A @ A.T).numpy(), pi, rho * (float(g_q.norm()) ** 2 + 1e-8))
    lambdas = [lam + (1 / (epoch + 1) ** 0.75) * (w[t] - lam) for t, lam in enumerate(lambdas)]
    nu = max(sum(lam * p for lam, p in zip(lambdas, pi, strict=True)), 0)
    g_final = sum(lambdas[t] * G[t] for t in range(T)) + nu * g_q
    return g_final[:T].detach(), g_final[T:].detach(), lambdas


@pytest.mark.parametrize(("rho", "inner_steps"), [(2.0, 5), (4.0, 2)])
def test_forum_direction_is_the_released_algorithms_step(rho, inner_steps):
    model, train, held = model64(1), f64(1), f64(101)
    logits = torch.tensor([0.2, -0.4, 0.1], dtype=torch.float64)
    lambdas = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64)
    want_alpha, want_theta, want_lambdas = naive_forum(model, train, held, logits, lambdas.tolist(), epoch=1,
                                                       rho=rho, eta=0.1, inner_steps=inner_steps)
    got = forum.direction(step_of(model, train, held, epoch=1), torch.softmax(logits, 0), lambdas, rho=rho,
                          eta=0.1, inner_steps=inner_steps)
    torch.testing.assert_close(lambdas, torch.tensor(want_lambdas, dtype=torch.float64), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got.alpha, want_alpha, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(got.theta, want_theta, rtol=1e-5, atol=1e-9)
    assert got.nu > 0 and float(want_alpha.abs().max()) > 1e-6  # both parts of g_q matter: a test that could fail


def test_forum_step_writes_the_direction_and_steps_alpha_and_lambda_across_epochs():
    model, lr = model64(2), 0.05
    strategy = forum.FORUM(forum.FORUM.Config(lr=lr, rho=2.0, inner_steps=3), tasks=NAMES)
    alpha = torch.nn.Parameter(torch.full((T,), 1 / T, dtype=torch.float64))
    adam = torch.optim.Adam([alpha], lr=lr)
    lambdas = [0.0] * T
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    for it, epoch in enumerate([0, 0, 1]):
        train, held = f64(30 + it), f64(40 + it)
        g_alpha, g_theta, lambdas = naive_forum(copy.deepcopy(model), train, held, alpha.detach(), lambdas,
                                                epoch=epoch, rho=2.0, eta=0.1, inner_steps=3)
        weights = torch.softmax(alpha.detach(), 0)
        alpha.grad = g_alpha
        adam.step()
        sgd.zero_grad()
        result = strategy.backward(step_of(model, train, held, epoch=epoch))
        torch.testing.assert_close(torch.tensor(list(result.weights.values()), dtype=torch.float64), weights)
        torch.testing.assert_close(strategy.lambdas, torch.tensor(lambdas, dtype=torch.float64), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(strategy.alpha.logits.detach(), alpha.detach(), rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), g_theta,
                                   rtol=1e-5, atol=1e-9)
        sgd.step()
    assert result.diagnostics["nu"] > 0 and float(alpha.detach().std()) > 1e-4  # ρ = 2: ν > 0, α moves


def one_batch_loader(batch) -> EpochLoader:
    x, targets = batch
    return EpochLoader(StackDataset(x, StackDataset(**targets)), batch_size=len(x), seed=0)


def test_forum_with_a_val_split_fits_the_lower_level_on_the_training_batch_and_the_upper_level_on_val():
    """The paper's roles (lower level: the training loss; upper level: the validation losses), through the engine:
    f and its K inner steps run on the step's own training batch (``StepContext.train_losses``), the F_t on the
    held-out val batch. One step equals the naive step on (training, val), and differs from the roles swapped."""
    model, train, val = model64(4), f64(50), f64(60)
    start = copy.deepcopy(model)
    strategy = forum.FORUM(forum.FORUM.Config(rho=2.0, inner_steps=3, heldout_split="val"), tasks=NAMES)
    engine = Engine(model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
                    tasks=TASKS, train_loader=one_batch_loader(train), heldout_loader=one_batch_loader(val),
                    state=State(max_epochs=1))
    engine.run()
    alpha0 = torch.full((T,), 1 / T, dtype=torch.float64)
    want_alpha, want_theta, want_lambdas = naive_forum(start, train, val, alpha0, [0.0] * T, epoch=0, rho=2.0,
                                                       eta=0.1, inner_steps=3)
    _, swapped_theta, _ = naive_forum(start, val, train, alpha0, [0.0] * T, epoch=0, rho=2.0, eta=0.1, inner_steps=3)
    got_theta = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    # the engine's losses are computed in fp32 (mtlx.engine.step.task_losses): agreement to fp32 rounding
    torch.testing.assert_close(got_theta, want_theta, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(strategy.lambdas, torch.tensor(want_lambdas, dtype=torch.float64), rtol=1e-4, atol=1e-6)
    alpha = torch.nn.Parameter(alpha0.clone())
    alpha.grad = want_alpha
    torch.optim.Adam([alpha], lr=1e-3).step()
    torch.testing.assert_close(strategy.alpha.logits.detach().double(), alpha.detach(), rtol=1e-6, atol=1e-7)
    assert float((swapped_theta - want_theta).abs().max()) > 1e-2 * float(want_theta.abs().max())  # could fail


# -- both ------------------------------------------------------------------------------------------------------

BOTH = [("moml", {}), ("moml", {"aggregation": "ew", "eta": 0.05}), ("forum", {}),
        ("forum", {"rho": 0.5, "inner_steps": 2, "lr": 0.01})]


def build(name: str, **options):
    cls = {"moml": moml.MOML, "forum": forum.FORUM}[name]
    return cls(cls.Config(**options), tasks=NAMES)


@pytest.mark.parametrize("name", ["moml", "forum"])
def test_under_a_loss_scale_the_update_is_the_unscaled_one_and_grad_is_scaled(name):
    results = []
    for scale in (1.0, 1024.0):
        model, strategy = model64(5), build(name, lr=0.05)
        step = step_of(model, f64(1), f64(2))
        step.loss_scale = scale
        strategy.backward(step)
        results.append((strategy.alpha.logits.detach(), [p.grad / scale for p in model.parameters()]))
    (a1, grads1), (a2, grads2) = results
    torch.testing.assert_close(a2, a1, rtol=1e-12, atol=0)
    for g1, g2 in zip(grads1, grads2, strict=True):
        torch.testing.assert_close(g2, g1, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(("name", "options"), BOTH)
def test_conformance_with_exact_resume(name, options):
    check_strategy(name, options)


def _args(name: str, *extra) -> list:
    return ["run", "--strategy", name, "--dataset", "digits", "--device", "cpu", "--batch-size", "16", "--seed", "0",
            "--quiet", "--threads", "1", "-o", "dataset.test_size=32", "-o", "dataset.train_size=64", *extra]


@pytest.mark.parametrize("name", ["moml", "forum"])
def test_digits_run_resumed_equals_the_uninterrupted_run(name, tmp_path):
    """4 steps an epoch: 5 steps in one go equal 2 steps + ``--resume`` to 5 (α, λ and the held-out position)."""
    options = ["-o", "strategy.lr=0.01", *(["-o", "strategy.rho=2"] if name == "forum" else [])]  # ν > 0: α moves
    assert_resume_is_exact(_args(name, *options), tmp_path, steps=5, interrupt_at=2)
    logits = load_checkpoint(tmp_path / "full" / "last.pt")["engine"]["strategy"][name]["logits"]
    assert len(set(logits.tolist())) == len(logits)  # α moved, each task its own way


@pytest.mark.slow
@pytest.mark.parametrize(("name", "options"), [("moml", ["-o", "strategy.aggregation=ew"]),
                                               ("forum", ["-o", "strategy.rho=2"])])
def test_two_processes_equal_one_process_on_the_global_batch(name, options, tmp_path):
    """Each process draws its own shard of both batches; every gradient and loss is averaged over processes."""
    toy = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-q", "--epochs", "2", "-s", name]
    one, two = engine_states_on_one_and_two_processes([*toy, "-o", "strategy.lr=0.05", *options], tmp_path)
    assert max(float((one["model"][k] - two["model"][k]).abs().max()) for k in one["model"]) < 1e-5
    logits_one, logits_two = one["strategy"][name]["logits"], two["strategy"][name]["logits"]
    torch.testing.assert_close(logits_two, logits_one, rtol=1e-4, atol=1e-6)
    assert float((logits_one - 1 / 3).abs().max()) > 1e-3  # α moved far more than that
