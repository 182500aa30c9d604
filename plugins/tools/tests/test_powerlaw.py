"""Power-law fits of eigenvalue spectra: recovery of known exponents, x_min choice, ESDs of weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlx_tools.powerlaw import analyze_state_dict, esd, fit_power_law, groups_from_names


def pareto(alpha: float, n: int, xmin: float, rng: np.random.Generator) -> np.ndarray:
    """Samples of p(x) ∝ x^-alpha on [xmin, ∞) by the inverse CDF x = xmin (1 - u)^(-1 / (alpha - 1))."""
    return xmin * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


@pytest.mark.parametrize("alpha", [2.5, 3.5])
def test_fit_recovers_a_known_exponent(alpha):
    fit = fit_power_law(pareto(alpha, 5000, 0.5, np.random.default_rng(7)))
    assert fit.alpha == pytest.approx(alpha, abs=0.1)
    assert fit.n == 5000 and fit.n_tail > 2500  # the whole sample is power law: most of it is the tail
    assert fit.xmin == pytest.approx(0.5, rel=0.2)


def test_fit_alpha_is_the_continuous_mle_at_the_chosen_xmin():
    x = pareto(3.0, 2000, 1.0, np.random.default_rng(1))
    fit = fit_power_law(x)
    tail = x[x >= fit.xmin]
    assert fit.n_tail == tail.size
    assert fit.alpha == pytest.approx(1 + tail.size / np.log(tail / fit.xmin).sum(), rel=1e-12)
    assert fit.sigma == pytest.approx((fit.alpha - 1) / np.sqrt(tail.size))


def test_fit_xmin_minimises_the_ks_distance():
    """Brute force over every candidate x_min with the textbook formulas gives the same choice."""
    x = np.sort(pareto(2.2, 300, 1.0, np.random.default_rng(3)) + np.random.default_rng(4).random(300))
    best = (np.inf, None)
    for xmin in x[:-1]:
        tail = x[x >= xmin]
        a = 1 + tail.size / np.log(tail / xmin).sum()
        cdf = 1 - (tail / xmin) ** (1 - a)
        d = np.abs(cdf - np.arange(tail.size) / tail.size).max()
        best = min(best, (d, xmin), key=lambda t: t[0])
    fit = fit_power_law(x)
    assert fit.xmin == best[1]
    assert fit.ks_distance == pytest.approx(best[0], rel=1e-9)


def test_fit_skips_a_head_that_is_not_power_law():
    """A uniform body below 1 and a Pareto(alpha=3) tail above it: x_min lands near 1, not at the minimum."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0.05, 1.0, 3000), pareto(3.0, 3000, 1.0, rng)])
    fit = fit_power_law(x)
    assert 0.9 <= fit.xmin <= 1.3
    assert fit.alpha == pytest.approx(3.0, abs=0.15)
    naive = 1 + x.size / np.log(x / x.min()).sum()  # fitting from the smallest value is badly off
    assert abs(naive - 3.0) > 1.0


@pytest.mark.parametrize("values", [[1.0], [2.0, 2.0, 2.0], [0.0, 1.0, 2.0]])
def test_fit_rejects_degenerate_input(values):
    with pytest.raises(ValueError, match="fit_power_law"):
        fit_power_law(values)


def test_esd_is_the_nonzero_spectrum_of_wtw():
    g = torch.Generator().manual_seed(0)
    linear = torch.randn(7, 12, generator=g)
    lin = linear.double()
    expected = np.linalg.eigvalsh((lin.T @ lin).numpy())[-7:]  # 12 - 7 eigenvalues are zero
    np.testing.assert_allclose(esd(linear), expected, rtol=1e-9)
    conv = torch.randn(16, 3, 3, 3, generator=g)
    w = conv.reshape(16, 27).double()
    np.testing.assert_allclose(esd(conv, "reshape"), np.linalg.eigvalsh((w.T @ w).numpy())[-16:], rtol=1e-9)
    slices = [conv[:, :, i, j].double() for i in range(3) for j in range(3)]  # (16, 3) each
    pooled = np.sort(np.concatenate([np.linalg.eigvalsh((s.T @ s).numpy()) for s in slices]))
    np.testing.assert_allclose(esd(conv, "slices"), pooled, rtol=1e-9)
    assert esd(torch.zeros(5, 5)).size == 0


def test_analyze_state_dict_skips_small_and_non_matrix_tensors():
    g = torch.Generator().manual_seed(0)
    state = {
        "enc.weight": torch.randn(64, 40, generator=g),
        "enc.bias": torch.randn(64, generator=g),
        "head.weight": torch.randn(3, 64, generator=g),
        "steps": torch.ones(4, 4, dtype=torch.long),
    }
    fits, skipped = analyze_state_dict(state, min_evals=10)
    assert [f.name for f in fits] == ["enc.weight"] and fits[0].fit.n == 40
    assert [(s.name, s.reason) for s in skipped] == [("head.weight", "3 eigenvalues < min_evals=10")]
    fits, _ = analyze_state_dict(state, {"head.weight": "head:a"}, min_evals=2)
    assert [(f.name, f.group) for f in fits] == [("head.weight", "head:a")]


def test_groups_from_names_uses_task_components():
    names = ["encoder.0.weight", "heads.seg.1.weight", "decoders.depth.conv.weight", "segment.weight"]
    assert groups_from_names(names, ["seg", "depth"]) == {
        "encoder.0.weight": "backbone",
        "heads.seg.1.weight": "head:seg",
        "decoders.depth.conv.weight": "head:depth",
        "segment.weight": "backbone",
    }
