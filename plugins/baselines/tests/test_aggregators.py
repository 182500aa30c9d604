"""Every pure aggregator on small hand-made gradient matrices, against values derived in the test.

Cases (T=2 in R², float64): orthogonal, conflicting (TV2, TV3), identical,
one zero row, near-parallel. The expected values come from the papers'
formulas written out here (closed forms, a scalar search, an SVD), or from
spec/baselines.md's verified vectors TV1-TV3 and its orthogonal table;
never from the implementation under test.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.optimize import minimize_scalar

import mtlx_baselines
from mtlx_baselines.errors import SolverError
from mtlx_baselines.strategies import (
    aligned_mtl,
    cagrad,
    db_mtl,
    excess_mtl,
    fairgrad,
    graddrop,
    gradvac,
    imtl,
    mgda,
    moco,
    nash_mtl,
    pcgrad,
    upgrad,
)


def G(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


ORTHOGONAL = G((3, 0), (0, 1))
CONFLICTING = G((2, 1), (-1, 1))  # TV2: g1·g2 = -1
TV1 = G((1, 2), (3, -1))
TV3 = G((1, 0), (-0.5, 1))
IDENTICAL = G((1, 2), (1, 2))
ZERO_ROW = G((1, 2), (0, 0))
NEAR_PARALLEL = G((1, 0.01), (1, -0.01))
CASES = {
    "orthogonal": ORTHOGONAL,
    "conflicting": CONFLICTING,
    "tv1": TV1,
    "tv3": TV3,
    "identical": IDENTICAL,
    "zero-row": ZERO_ROW,
    "near-parallel": NEAR_PARALLEL,
}


def close(actual: torch.Tensor, expected, tol: float = 1e-9) -> None:
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert torch.allclose(actual.double(), expected, atol=tol, rtol=tol), f"{actual.tolist()} != {expected.tolist()}"


def random_G(num_tasks: int, seed: int, size: int = 30) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_tasks, size, generator=g, dtype=torch.float64) * torch.rand(num_tasks, 1, generator=g,
                                                                                       dtype=torch.float64)


def test_aggregator_lookup_by_name():
    assert mtlx_baselines.aggregator("cagrad") is cagrad.aggregate
    assert mtlx_baselines.aggregator("nash-mtl") is nash_mtl.aggregate
    assert set(mtlx_baselines.aggregator_names()) == {
        "mgda", "pcgrad", "graddrop", "gradvac", "imtl", "cagrad", "nash-mtl", "aligned-mtl", "db-mtl",
        "fairgrad", "moco", "upgrad", "excess-mtl", "config", "dualproj", "metabalance",
    }
    with pytest.raises(mtlx_baselines_error(), match="combines losses, not gradients: it has no aggregator"):
        mtlx_baselines.aggregator("uw")
    with pytest.raises(mtlx_baselines_error(), match="did you mean 'cagrad'"):
        mtlx_baselines.aggregator("cagard")


def mtlx_baselines_error() -> type[Exception]:
    from mtlx import UnknownComponentError

    return UnknownComponentError


# -- MGDA -----------------------------------------------------------------------------------------


def mgda_two_task(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Sener & Koltun's closed form for T=2: γ = (g2−g1)·g2 / ‖g1−g2‖², clipped to [0, 1]."""
    diff = g1 - g2
    if float(diff.norm()) == 0:
        return g1
    gamma = min(max(float((g2 - g1) @ g2 / (diff @ diff)), 0.0), 1.0)
    return gamma * g1 + (1 - gamma) * g2


@pytest.mark.parametrize("case", sorted(CASES))
def test_mgda_matches_two_task_closed_form(case):
    grads = CASES[case]
    d, weights = mgda.aggregate(grads)
    close(d, mgda_two_task(grads[0], grads[1]))
    close(weights @ grads, d)


def test_mgda_verified_vectors():
    d, weights = mgda.aggregate(TV1)
    close(d, [21 / 13, 14 / 13])
    close(weights, [9 / 13, 4 / 13])
    d, weights = mgda.aggregate(ORTHOGONAL)
    close(d, [0.3, 0.9])
    close(weights, [0.1, 0.9])
    d, _ = mgda.aggregate(G((1, 0), (2, 0)))  # dominated pair: exact MGDA gives a (LibMTL's clip gives 1.001)
    close(d, [1, 0])


@pytest.mark.parametrize(("normalization", "scale"), [("l2", [3.0, 1.0]), ("loss", [2.0, 0.5]), ("loss+", [6.0, 0.5])])
def test_mgda_normalizations(normalization, scale):
    losses = torch.tensor([2.0, 0.5], dtype=torch.float64)
    d, weights = mgda.aggregate(ORTHOGONAL, losses=losses, normalization=normalization)
    normalised = ORTHOGONAL / torch.tensor(scale, dtype=torch.float64)[:, None]
    close(d, mgda_two_task(normalised[0], normalised[1]))
    close(weights @ ORTHOGONAL, d)


@pytest.mark.parametrize(("num_tasks", "seed"), [(3, 0), (4, 1), (6, 2), (5, 3)])
def test_mgda_min_norm_kkt(num_tasks, seed):
    grads = random_G(num_tasks, seed)
    if seed == 3:  # make 0 nearly a convex combination: the hard, near-Pareto-stationary case
        grads[1] = -0.5 * grads[0] + 0.05 * grads[1]
    d, alpha = mgda.aggregate(grads)
    K = grads @ grads.T
    value = float(alpha @ K @ alpha)
    assert float(alpha.sum()) == pytest.approx(1.0) and bool((alpha >= 0).all())
    # KKT of min αᵀKα on the simplex: (Kα)_i >= αᵀKα for all i, with equality where α_i > 0
    scale = float(K.trace())
    assert bool((K @ alpha >= value - 1e-9 * scale).all())
    support = alpha > 1e-9
    close((K @ alpha)[support], torch.full((int(support.sum()),), value, dtype=torch.float64), tol=1e-8 * scale)
    close(d, alpha @ grads)


# -- PCGrad ---------------------------------------------------------------------------------------


def pcgrad_reference(grads: torch.Tensor, orders: list[list[int]]) -> torch.Tensor:
    """Yu et al. Algorithm 1 on the vectors: g_i' -= (g_i'·g_j)/‖g_j‖² g_j against the original g_j."""
    total = torch.zeros_like(grads[0])
    for i, order in enumerate(orders):
        g = grads[i].clone()
        for j in order:
            if float(g @ grads[j]) < 0:
                g = g - (g @ grads[j]) / (grads[j] @ grads[j]) * grads[j]
        total += g
    return total


@pytest.mark.parametrize("case", sorted(CASES))
def test_pcgrad_two_tasks(case):
    grads = CASES[case]
    d, weights = pcgrad.aggregate(grads, generator=torch.Generator().manual_seed(0))
    close(d, pcgrad_reference(grads, [[1], [0]]))
    close(weights @ grads, d)


def test_pcgrad_verified_vector_and_removed_conflict():
    d, weights = pcgrad.aggregate(CONFLICTING, generator=torch.Generator().manual_seed(0))
    close(d, [0.9, 2.7])
    close(weights, [1.2, 1.5])
    g1_projected = CONFLICTING[0] + 0.5 * CONFLICTING[1]  # 1 + (1/‖g2‖²) from the weights' derivation
    g2_projected = CONFLICTING[1] + 0.2 * CONFLICTING[0]
    assert float(g1_projected @ CONFLICTING[1]) == pytest.approx(0, abs=1e-12)
    assert float(g2_projected @ CONFLICTING[0]) == pytest.approx(0, abs=1e-12)
    close(g1_projected + g2_projected, d)


def test_pcgrad_three_tasks_follows_some_random_order_and_the_generator():
    grads = G((1, 0, 0.2), (-0.6, 1, 0), (-0.5, -0.7, 1))
    candidates = [
        pcgrad_reference(grads, [list(o0), list(o1), list(o2)])
        for o0, o1, o2 in itertools.product(itertools.permutations([1, 2]), itertools.permutations([0, 2]),
                                            itertools.permutations([0, 1]))
    ]
    seen = set()
    for seed in range(12):
        d, _ = pcgrad.aggregate(grads, generator=torch.Generator().manual_seed(seed))
        matches = [k for k, c in enumerate(candidates) if torch.allclose(d, c, atol=1e-12)]
        assert matches, f"seed {seed}: {d.tolist()} is no PCGrad order's result"
        seen.add(tuple(d.tolist()))
        again, _ = pcgrad.aggregate(grads, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(d, again)
    assert len(seen) > 1, "the task order never changed"


def test_pcgrad_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pcgrad.aggregate(random_G(4, 0), generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


# -- UPGrad ---------------------------------------------------------------------------------------


def test_upgrad_verified_vector():
    d, weights = upgrad.aggregate(CONFLICTING, reg_eps=0.0)
    close(weights, [0.6, 0.75], tol=1e-7)
    close(d, [0.45, 1.35], tol=1e-7)
    # T=2: UPGrad = PCGrad / 2
    pc, _ = pcgrad.aggregate(CONFLICTING, generator=torch.Generator().manual_seed(0))
    close(d, pc / 2, tol=1e-7)
    d, _ = upgrad.aggregate(CONFLICTING)  # default ridge 1e-4 on K / tr K
    close(d, [0.45, 1.35], tol=1e-3)


@pytest.mark.parametrize(
    ("case", "expected"),
    [("orthogonal", [1.5, 0.5]), ("identical", [1, 2]), ("zero-row", [0.5, 1]), ("near-parallel", [1, 0])],
)
def test_upgrad_without_conflict_is_the_mean_of_the_projections(case, expected):
    d, _ = upgrad.aggregate(CASES[case], reg_eps=1e-12)
    close(d, expected, tol=1e-7)


@pytest.mark.parametrize("scale", [1.0, 1e-4])
def test_upgrad_no_negative_directional_derivative_at_any_gradient_scale(scale):
    grads = random_G(4, 5) * scale
    grads[1] = -grads[0] + 0.3 * grads[1]
    d, _ = upgrad.aggregate(grads, reg_eps=1e-12)
    assert bool((grads @ d >= -1e-9 * scale**2).all()), (grads @ d).tolist()
    mean = grads.mean(0)
    assert not torch.allclose(d, mean), "UPGrad collapsed to the mean (absolute norm_eps threshold)"


def test_upgrad_all_zero_gradients():
    d, weights = upgrad.aggregate(torch.zeros(3, 4, dtype=torch.float64))
    close(d, torch.zeros(4))
    close(weights, [1 / 3] * 3)


# -- CAGrad ---------------------------------------------------------------------------------------


def cagrad_reference(grads: torch.Tensor, c: float, rescale: int) -> torch.Tensor:
    """Two tasks: minimise g_wᵀg0 + c‖g0‖‖g_w‖ over w = (γ, 1−γ) by bounded scalar search, then the formula."""
    g0 = grads.mean(0)
    norm0 = float(g0.norm())

    def objective(gamma: float) -> float:
        gw = gamma * grads[0] + (1 - gamma) * grads[1]
        return float(gw @ g0) + c * norm0 * float(gw.norm())

    gamma = minimize_scalar(objective, bounds=(0, 1), method="bounded", options={"xatol": 1e-12}).x
    gw = gamma * grads[0] + (1 - gamma) * grads[1]
    d = g0 + c * norm0 / (float(gw.norm()) + 1e-8) * gw
    return d / {0: 1.0, 1: 1 + c**2, 2: 1 + c}[rescale]


def test_cagrad_verified_vector_tv3():
    d, _ = cagrad.aggregate(TV3, c=0.5, rescale=0)
    close(d, [0.457889, 0.686834], tol=2e-6)
    assert float(d @ TV3[0]) == pytest.approx(float(d @ TV3[1]), abs=1e-6)  # equal improvement, > min_i ⟨g0, g_i⟩
    assert float(d @ TV3[0]) > 0.25
    d, _ = cagrad.aggregate(TV3)  # LibMTL defaults: c=0.5, rescale=1
    close(d, [0.366312, 0.549467], tol=2e-6)


@pytest.mark.parametrize("case", ["orthogonal", "conflicting", "tv1", "tv3", "near-parallel"])
@pytest.mark.parametrize("rescale", [0, 1, 2])
def test_cagrad_matches_scalar_search(case, rescale):
    d, weights = cagrad.aggregate(CASES[case], c=0.4, rescale=rescale)
    close(d, cagrad_reference(CASES[case], 0.4, rescale), tol=1e-6)
    close(weights @ CASES[case], d)


def test_cagrad_degenerate_cases():
    d, _ = cagrad.aggregate(IDENTICAL, c=0.5, rescale=1)  # g_w = g for every w: d = (1+c) g / (1+c²)
    close(d, 1.5 * IDENTICAL[0] / 1.25, tol=1e-7)
    d, _ = cagrad.aggregate(ZERO_ROW, c=0.5, rescale=1)  # the zero row minimises: g_w = 0, d = g0
    close(d, ZERO_ROW.mean(0) / 1.25, tol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_cagrad_c0_is_the_mean(seed):
    grads = random_G(3 + seed, seed)
    d, weights = cagrad.aggregate(grads, c=0.0)
    close(d, grads.mean(0))
    close(weights, [1 / (3 + seed)] * (3 + seed))


# -- IMTL-G ---------------------------------------------------------------------------------------


def imtl_two_task(grads: torch.Tensor) -> torch.Tensor:
    """Liu et al.'s closed form for T=2: α2 = g1·U / (D·U), D = g1−g2, U = u1−u2, α1 = 1−α2."""
    g1, g2 = grads
    u = g1 / g1.norm() - g2 / g2.norm()
    alpha2 = float(g1 @ u / ((g1 - g2) @ u))
    return torch.tensor([1 - alpha2, alpha2], dtype=torch.float64)


@pytest.mark.parametrize("case", ["orthogonal", "conflicting", "tv1", "tv3", "near-parallel"])
def test_imtl_g_matches_closed_form(case):
    grads = CASES[case]
    d, alpha = imtl.aggregate(grads)
    close(alpha, imtl_two_task(grads), tol=1e-7)
    close(d, alpha @ grads)


def test_imtl_g_verified_orthogonal_and_degenerate():
    d, alpha = imtl.aggregate(ORTHOGONAL)
    close(alpha, [0.25, 0.75])
    close(d, [0.75, 0.75])
    d, _ = imtl.aggregate(IDENTICAL)  # K singular: the pseudo-inverse keeps d = g
    close(d, IDENTICAL[0])
    d, _ = imtl.aggregate(ZERO_ROW)
    close(d, ZERO_ROW[0])


@pytest.mark.parametrize(("num_tasks", "seed"), [(3, 0), (4, 1), (5, 2)])
def test_imtl_g_equal_projections(num_tasks, seed):
    grads = random_G(num_tasks, seed)
    d, alpha = imtl.aggregate(grads)
    projections = (grads / grads.norm(dim=1, keepdim=True)) @ d
    close(projections, [float(projections[0])] * num_tasks, tol=1e-8)
    assert float(alpha.sum()) == pytest.approx(1.0)


# -- Aligned-MTL ----------------------------------------------------------------------------------


def aligned_reference(grads: torch.Tensor) -> torch.Tensor:
    """The aligned system has every nonzero singular value set to σ_min: d = σ_min 1ᵀ U_r V_rᵀ (G = U S Vᵀ)."""
    U, S, Vh = torch.linalg.svd(grads, full_matrices=False)
    rank = int((S**2 > S[0] ** 2 * grads.shape[0] * torch.finfo(grads.dtype).eps).sum())
    U, S, Vh = U[:, :rank], S[:rank], Vh[:rank]
    return S[-1] * torch.ones(grads.shape[0], dtype=grads.dtype) @ U @ Vh


@pytest.mark.parametrize("case", sorted(CASES))
def test_aligned_mtl_matches_svd(case):
    d, weights = aligned_mtl.aggregate(CASES[case])
    close(d, aligned_reference(CASES[case]), tol=1e-8)
    close(weights @ CASES[case], d)


def test_aligned_mtl_verified_orthogonal_and_random():
    d, weights = aligned_mtl.aggregate(ORTHOGONAL)
    close(weights, [1 / 3, 1])
    close(d, [1, 1])
    grads = random_G(4, 3)
    close(aligned_mtl.aggregate(grads)[0], aligned_reference(grads), tol=1e-8)


# -- Nash-MTL and FairGrad ----------------------------------------------------------------------


def nash_two_task(grads: torch.Tensor) -> torch.Tensor:
    """K = [[a, b], [b, c]]: Kα = 1/α gives α2 = α1 √(a/c), α1 = 1/√(a + b√(a/c))."""
    K = grads @ grads.T
    a, b, c = float(K[0, 0]), float(K[0, 1]), float(K[1, 1])
    alpha1 = 1 / math.sqrt(a + b * math.sqrt(a / c))
    return torch.tensor([alpha1, alpha1 * math.sqrt(a / c)], dtype=torch.float64)


@pytest.mark.parametrize("case", ["orthogonal", "conflicting", "tv1", "tv3", "identical", "near-parallel"])
def test_nash_mtl_matches_closed_form(case):
    grads = CASES[case]
    d, alpha = nash_mtl.aggregate(grads, max_norm=0.0)
    close(alpha, nash_two_task(grads), tol=1e-8)
    close(d, alpha @ grads)


def test_nash_mtl_verified_orthogonal_and_clipping():
    d, alpha = nash_mtl.aggregate(ORTHOGONAL, max_norm=0.0)
    close(alpha, [1 / 3, 1])
    close(d, [1, 1])
    d, alpha = nash_mtl.aggregate(ORTHOGONAL)  # LibMTL default max_norm = 1: ‖(1, 1)‖ = √2 is clipped
    close(d, [1 / math.sqrt(2), 1 / math.sqrt(2)])
    close(alpha, [1 / 3, 1])


@pytest.mark.parametrize(("num_tasks", "seed"), [(3, 0), (5, 1), (8, 2)])
def test_nash_mtl_bargaining_equation(num_tasks, seed):
    grads = random_G(num_tasks, seed)
    grads[1] = 0.9 * grads[0] + 0.1 * grads[1]
    _, alpha = nash_mtl.aggregate(grads, max_norm=0.0)
    K = grads @ grads.T
    close((K @ alpha) * alpha, torch.ones(num_tasks), tol=1e-8)


def test_nash_mtl_zero_row_warns_and_balances_the_rest():
    with pytest.warns(RuntimeWarning, match=r"task\(s\) \[1\] have a zero gradient"):
        d, alpha = nash_mtl.aggregate(ZERO_ROW, max_norm=0.0)
    close(alpha, [1 / math.sqrt(5), 0])
    close(d, ZERO_ROW[0] / math.sqrt(5))


def test_nash_mtl_raises_when_no_solution_exists():
    with pytest.raises(SolverError, match="Pareto-stationary"):
        nash_mtl.aggregate(G((1, 0), (-2, 0)))
    with pytest.raises(SolverError, match="every task gradient is zero"):
        nash_mtl.aggregate(torch.zeros(2, 3, dtype=torch.float64))


def test_fairgrad_alpha_one_is_nash_without_clipping():
    grads = random_G(4, 7)
    close(fairgrad.aggregate(grads, alpha=1.0)[1], nash_mtl.aggregate(grads, max_norm=0.0)[1], tol=1e-8)


def test_fairgrad_orthogonal_alpha_two():
    # (K w)_i = w_i^(-1/2) with K = diag(9, 1): 9 w1 = w1^(-1/2) -> w1 = 9^(-2/3); w2 = 1
    d, w = fairgrad.aggregate(ORTHOGONAL, alpha=2.0)
    close(w, [9 ** (-2 / 3), 1.0])
    close(d, w @ ORTHOGONAL)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 5.0])
@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_fairgrad_fairness_equation(alpha, scale):
    grads = random_G(4, 11) * scale
    _, w = fairgrad.aggregate(grads, alpha=alpha)
    K = grads @ grads.T
    close((K @ w) / w.pow(-1 / alpha), torch.ones(4), tol=1e-7)


# -- GradVac --------------------------------------------------------------------------------------


def test_gradvac_with_zero_targets_is_pcgrad_and_updates_the_ema():
    state = gradvac.GradVacState()
    d, _ = gradvac.aggregate(CONFLICTING, state=state, generator=torch.Generator().manual_seed(0), beta=0.5)
    close(d, [0.9, 2.7], tol=1e-7)  # up to the method's 1e-8 denominators
    rho = -1 / math.sqrt(10)  # cos(g1, g2), seen before any correction by both tasks
    close(state.phi_hat[0], [[0, 0.5 * rho], [0.5 * rho, 0]], tol=1e-7)


def test_gradvac_lifts_the_cosine_to_its_target():
    grads = G((1, 0), (0, 1))
    state = gradvac.GradVacState(phi_hat=torch.full((1, 2, 2), 0.5, dtype=torch.float64))
    d, weights = gradvac.aggregate(grads, state=state, generator=torch.Generator().manual_seed(0), beta=0.25)
    coef = 0.5 / math.sqrt(0.75)  # ‖g_i'‖(φ̂√(1−ρ²) − ρ√(1−φ̂²)) / (‖g_j‖√(1−φ̂²)) with ρ = 0, φ̂ = 0.5
    close(weights, [1 + coef, 1 + coef], tol=1e-7)
    corrected = grads[0] + coef * grads[1]
    assert float(corrected @ grads[1] / corrected.norm()) == pytest.approx(0.5)  # the new cosine is the target
    close(state.phi_hat[0], [[0.5, 0.75 * 0.5], [0.75 * 0.5, 0.5]])
    close(d, weights @ grads)


@pytest.mark.parametrize("case", ["orthogonal", "identical", "zero-row", "near-parallel"])
def test_gradvac_first_step_without_conflict_is_the_sum(case):
    d, _ = gradvac.aggregate(CASES[case], state=gradvac.GradVacState(), generator=torch.Generator().manual_seed(0))
    close(d, CASES[case].sum(0))


def test_gradvac_groups_are_independent():
    grads = random_G(3, 4, size=6)
    groups = [(0, 2), (2, 6)]
    state = gradvac.GradVacState()
    d, _ = gradvac.aggregate(grads, state=state, generator=torch.Generator().manual_seed(1), groups=groups)
    for k, (start, stop) in enumerate(groups):
        part = gradvac.GradVacState()
        expected, _ = gradvac.aggregate(grads[:, start:stop], state=part, generator=torch.Generator().manual_seed(1))
        close(d[start:stop], expected)
        close(state.phi_hat[k], part.phi_hat[0])


# -- GradDrop -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["orthogonal", "identical", "zero-row"])
def test_graddrop_keeps_everything_without_sign_conflict(case):
    d, _ = graddrop.aggregate(CASES[case], generator=torch.Generator().manual_seed(0))
    close(d, CASES[case].sum(0))


def test_graddrop_conflicting_coordinate_keeps_one_sign_with_purity_probability():
    # coordinate 0: +2 and -1, purity P = ½(1 + 1/3) = 2/3; coordinate 1: both positive, always kept
    generator = torch.Generator().manual_seed(0)
    draws = [graddrop.aggregate(CONFLICTING, generator=generator)[0] for _ in range(3000)]
    assert all(d.tolist() in ([2.0, 2.0], [-1.0, 2.0]) for d in draws)
    positive = sum(d[0] > 0 for d in draws) / len(draws)
    assert positive == pytest.approx(2 / 3, abs=0.03)


def test_graddrop_formula_and_leak():
    grads = random_G(3, 9, size=40)
    generator = torch.Generator().manual_seed(5)
    uniform = torch.rand(40, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    purity = 0.5 * (1 + grads.sum(0) / (grads.abs().sum(0) + 1e-7))
    mask = ((purity > uniform) & (grads > 0)) | ((purity < uniform) & (grads < 0))
    d, kept = graddrop.aggregate(grads, generator=generator, leak=0.25)
    close(d, ((0.25 + 0.75 * mask.double()) * grads).sum(0))
    close(kept, (0.25 + 0.75 * mask.double()).mean(1))
    d, _ = graddrop.aggregate(grads, generator=generator, leak=1.0)
    close(d, grads.sum(0))


# -- DB-MTL, MoCo, ExcessMTL (stateful) -------------------------------------------------------


def test_db_mtl_warm_up_and_second_step():
    state = db_mtl.DBMTLState()
    d, scales = db_mtl.aggregate(ORTHOGONAL, state=state)  # buffer 0.1 g: norms 0.3, 0.1 -> scale to 0.3
    close(d, [0.3, 0.3], tol=1e-6)  # the method's 1e-8 in max‖ĝ‖/(‖ĝ_t‖ + 1e-8)
    close(scales, [1, 3], tol=1e-6)
    d, _ = db_mtl.aggregate(ORTHOGONAL, state=state)  # buffer 0.9·0.1g + 0.1g = 0.19 g
    close(d, [0.57, 0.57], tol=1e-6)
    assert state.steps == 2


def test_db_mtl_decaying_rate():
    state = db_mtl.DBMTLState()
    db_mtl.aggregate(ORTHOGONAL, state=state, beta=0.9, beta_sigma=1.0)
    db_mtl.aggregate(2 * ORTHOGONAL, state=state, beta=0.9, beta_sigma=1.0)
    # step 1: rate 0.9 -> 0.1 g; step 2: rate 0.45 -> 0.45·0.1 g + 0.55·2g = 1.145 g
    close(state.buffer, 1.145 * ORTHOGONAL)


def test_moco_two_steps():
    state = moco.MoCoState()
    losses = torch.tensor([2.0, 1.0], dtype=torch.float64)
    d, lam = moco.aggregate(ORTHOGONAL, losses, state=state)
    # h = L_t g_t/(‖g_t‖ + 1e-8) ≈ diag(2, 1); Y = 0.5 h; λ = softmax(½ − 0.1·YYᵀ·½)
    h = torch.diag(torch.tensor([2 * 3 / (3 + 1e-8), 1 / (1 + 1e-8)], dtype=torch.float64))
    Y = 0.5 * h
    expected_lambda = torch.softmax(torch.tensor([0.5, 0.5], dtype=torch.float64) - 0.1 * (Y @ Y.T) @ torch.tensor(
        [0.5, 0.5], dtype=torch.float64), 0)
    close(lam, expected_lambda)
    close(d, expected_lambda @ Y)
    d, lam = moco.aggregate(ORTHOGONAL, losses, state=state)  # k = 2: β_2 = 0.5/√2, γ_2 = 0.1/√2
    Y2 = Y - 0.5 / math.sqrt(2) * (Y - h)
    expected2 = torch.softmax(expected_lambda - 0.1 / math.sqrt(2) * (Y2 @ Y2.T) @ expected_lambda, 0)
    close(lam, expected2)
    close(d, expected2 @ Y2)


def test_excess_mtl_first_step_is_ew_then_exponentiated_update():
    state = excess_mtl.ExcessMTLState()
    d, w = excess_mtl.aggregate(ORTHOGONAL, state=state, robust_step_size=0.5)
    close(w, [1, 1])
    close(d, [3, 1])
    second = G((6, 0), (0, 1))
    d, w = excess_mtl.aggregate(second, state=state, robust_step_size=0.5)
    # e = Σ g²/√(Σ_s g_s² + 1e-7): step 1 e⁰ = (9/√9, 1/√1); step 2 e = (36/√45, 1/√2)
    e0 = torch.tensor([9 / math.sqrt(9 + 1e-7), 1 / math.sqrt(1 + 1e-7)], dtype=torch.float64)
    e = torch.tensor([36 / math.sqrt(45 + 1e-7), 1 / math.sqrt(2 + 1e-7)], dtype=torch.float64)
    raw = torch.exp(0.5 * e / e0)
    close(w, 2 * raw / raw.sum())
    close(d, w @ second)


def test_excess_mtl_zero_gradient_gets_its_baseline_later():
    state = excess_mtl.ExcessMTLState()
    excess_mtl.aggregate(ZERO_ROW, state=state)
    assert float(state.baseline[1]) == 0.0
    _, w = excess_mtl.aggregate(ORTHOGONAL, state=state)
    assert bool(torch.isfinite(w).all()) and float(state.baseline[1]) > 0
