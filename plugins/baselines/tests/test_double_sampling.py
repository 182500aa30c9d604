"""MoDo and SDMGrad: three independent batches per step (``batches_per_step = 3``).

Their updates on given gradients are checked against naive float64 transcriptions of the defining
equations written here (LibMTL's MoDo/SDMGrad, the papers' algorithms), loop by loop and with a
simplex projection by bisection instead of sorting; then conformance (exact resume included), a
digits run, a resumed digits run across an epoch boundary, and the one-line refusal of a loader
too short for three batches.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from mtlx.cli import main
from mtlx_baselines.strategies import modo, sdmgrad
from mtlx_baselines.strategies._double_sampling import project_simplex
from mtlx_testing import assert_resume_is_exact, check_strategy

TINY = ["-o", "dataset.val_size=32", "-o", "dataset.test_size=32"]


def naive_projection(v: list[float]) -> list[float]:
    """argmin_{x ∈ Δ} ‖x − v‖: x = max(v − θ, 0) with Σx = 1, θ found by bisection (float64)."""
    lo, hi = min(v) - 1.0, max(v)
    for _ in range(200):
        theta = (lo + hi) / 2
        if sum(max(x - theta, 0.0) for x in v) > 1.0:
            lo = theta
        else:
            hi = theta
    return [max(x - (lo + hi) / 2, 0.0) for x in v]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def naive_modo(G0, G1, G2, lam, gamma, rho):
    """λ' = Π(λ − γ(G₀G₁ᵀλ + ρλ)), d = G₂ᵀλ' (lists of float64 rows)."""
    T, N = len(G0), len(G0[0])
    g1_lam = [sum(G1[t][n] * lam[t] for t in range(T)) for n in range(N)]  # G₁ᵀλ
    step = [dot(G0[t], g1_lam) + rho * lam[t] for t in range(T)]
    new = naive_projection([lam[t] - gamma * step[t] for t in range(T)])
    return [sum(new[t] * G2[t][n] for t in range(T)) for n in range(N)], new


def naive_sdmgrad(Z, X1, X2, w, lamda, niter, lr, momentum):
    T, N = len(Z), len(Z[0])
    K = [[dot(X1[i], X2[j]) for j in range(T)] for i in range(T)]
    scale = sum(max(K[t][t], 0.0) ** 0.5 for t in range(T)) / T
    K = [[K[i][j] / (scale**2 + 1e-8) for j in range(T)] for i in range(T)]
    pull = [lamda * sum(K[i]) / T for i in range(T)]
    buf = None
    for _ in range(niter):
        g = [dot(K[i], w) + pull[i] for i in range(T)]
        buf = g if buf is None else [momentum * b + x for b, x in zip(buf, g, strict=True)]
        w = naive_projection([w[t] - lr * buf[t] for t in range(T)])
    mean = [sum(Z[t][n] for t in range(T)) / T for n in range(N)]
    d = [(sum(w[t] * Z[t][n] for t in range(T)) + lamda * mean[n]) / (1 + lamda) for n in range(N)]
    return d, w


def grads(seed: int, T: int = 3, N: int = 7) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(T, N, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("seed", range(4))
def test_projection_matches_bisection(seed):
    v = torch.randn(5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3
    torch.testing.assert_close(project_simplex(v), torch.tensor(naive_projection(v.tolist()), dtype=torch.float64),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_modo_update_matches_the_defining_equations_over_steps(seed):
    state, lam = modo.MoDoState(), [1 / 3] * 3
    for step in range(4):  # λ carries over: the state is checked too
        G0, G1, G2 = grads(seed * 10 + step)
        d, weights = modo.update(G0, G1, G2, state=state, gamma=0.05, rho=0.1)
        d_ref, lam = naive_modo(G0.tolist(), G1.tolist(), G2.tolist(), lam, 0.05, 0.1)
        torch.testing.assert_close(weights, torch.tensor(lam, dtype=torch.float64), rtol=0, atol=1e-10)
        torch.testing.assert_close(d, torch.tensor(d_ref, dtype=torch.float64), rtol=0, atol=1e-10)
    assert any(0 < x < 1 for x in lam) and lam != [1 / 3] * 3  # the update moved λ inside the simplex


@pytest.mark.parametrize("seed", range(3))
def test_sdmgrad_update_matches_the_defining_equations_over_steps(seed):
    state, w = sdmgrad.SDMGradState(), [1 / 3] * 3
    for step in range(3):
        Z, X1, X2 = grads(100 + seed * 10 + step)
        d, weights = sdmgrad.update(Z, X1, X2, state=state, lamda=0.3, niter=20, lr=5.0, momentum=0.5)
        d_ref, w = naive_sdmgrad(Z.tolist(), X1.tolist(), X2.tolist(), w, 0.3, 20, 5.0, 0.5)
        torch.testing.assert_close(weights, torch.tensor(w, dtype=torch.float64), rtol=0, atol=1e-9)
        torch.testing.assert_close(d, torch.tensor(d_ref, dtype=torch.float64), rtol=0, atol=1e-9)


def test_the_three_gradients_play_their_own_roles():
    """MoDo's direction is G₂ᵀλ (not G₀'s), SDMGrad's is from ζ = the step's own batch: swapping batches changes d."""
    G0, G1, G2 = grads(7)
    d, _ = modo.update(G0, G1, G2, state=modo.MoDoState())
    d_swapped, _ = modo.update(G2, G1, G0, state=modo.MoDoState())
    assert not torch.allclose(d, d_swapped)


@pytest.mark.parametrize("name", ["modo", "sdmgrad"])
def test_conformance_with_exact_resume(name):
    check_strategy(name)


def _args(name, *extra) -> list:
    return ["run", "--strategy", name, "--dataset", "digits", "--device", "cpu", "--batch-size", "16", "--seed", "0",
            "--quiet", "--threads", "1", *TINY, *extra]


def _run(tmp_path, name, *extra):
    return CliRunner().invoke(main, _args(name, *extra))


@pytest.mark.parametrize("name", ["modo", "sdmgrad"])
def test_digits_run_and_resume_across_an_epoch(name, tmp_path):
    """112 samples / 16 = 7 batches: 2 steps of 3 batches per epoch (one batch unused); 5 steps in one go
    equal 2 steps + ``--resume`` to 5."""
    assert_resume_is_exact(_args(name, "-o", "dataset.train_size=112"), tmp_path, steps=5, interrupt_at=2)


def test_a_loader_too_short_for_three_batches_is_refused_before_the_run_directory(tmp_path):
    out = tmp_path / "run"
    result = _run(tmp_path, "modo", "-o", "dataset.train_size=32", "--max-steps", "1", "--out", str(out))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and "3 training batches per step" in lines[0] and "has 2" in lines[0], result.output
    assert not out.exists()
