"""Each loss weighting's ``combine`` against its paper formula, and its cross-step state."""

from __future__ import annotations

import math

import pytest
import torch

from mtlx import ConfigError, LossWeighting
from mtlx_baselines.plugin import STRATEGIES
from mtlx_baselines.strategies.dwa import DynamicWeightAverage
from mtlx_baselines.strategies.famo import FAMO
from mtlx_baselines.strategies.gls import GeometricLossStrategy
from mtlx_baselines.strategies.imtl import IMTL
from mtlx_baselines.strategies.rlw import RandomLossWeighting
from mtlx_baselines.strategies.stch import STCH
from mtlx_baselines.strategies.uw import UncertaintyWeighting

TASKS = ("a", "b", "c")


def losses_of(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def grad_of(total: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(total, losses)
    return grad


def test_the_loss_weightings_compose_with_rep_mtl():
    for name in ("ew", "uw", "dwa", "rlw", "gls", "famo", "stch", "imtl"):
        assert issubclass(STRATEGIES[name], LossWeighting), name


def test_ew(step):
    losses = losses_of(1.0, 2.0, 4.0)
    total, weights = STRATEGIES["ew"](STRATEGIES["ew"].Config(), tasks=TASKS).combine(losses, step)
    assert total.item() == 7.0 and weights.tolist() == [1, 1, 1]


def test_uw_formula_and_learnable_log_variances(step):
    uw = UncertaintyWeighting(UncertaintyWeighting.Config(), tasks=TASKS)
    losses = losses_of(1.0, 2.0, 4.0)
    total, weights = uw.combine(losses, step)
    s = -0.5
    assert total.item() == pytest.approx(sum(v / (2 * math.exp(s)) + s / 2 for v in (1.0, 2.0, 4.0)))
    assert weights.tolist() == pytest.approx([1 / (2 * math.exp(s))] * 3)
    (grad,) = torch.autograd.grad(total, uw.log_vars)  # ∂/∂s = −L e^{-s}/2 + 1/2
    assert grad.tolist() == pytest.approx([-v * math.exp(-s) / 2 + 0.5 for v in (1.0, 2.0, 4.0)], rel=1e-6)
    assert list(uw.extra_parameters()) == [uw.log_vars]


def test_dwa_weights_from_the_last_two_epochs(step):
    dwa = DynamicWeightAverage(DynamicWeightAverage.Config(temperature=2.0), tasks=TASKS)
    losses = losses_of(1.0, 2.0, 4.0)
    step.epoch = 1
    assert dwa.combine(losses, step)[1].tolist() == [1, 1, 1]  # no two complete epochs yet
    dwa.on_epoch_end(0, {"a": 2.0, "b": 1.0, "c": 1.0})
    dwa.on_epoch_end(1, {"a": 1.0, "b": 1.0, "c": 2.0})
    step.epoch = 2
    total, weights = dwa.combine(losses, step)
    ratios = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    expected = 3 * torch.softmax(ratios / 2.0, 0)
    assert weights.tolist() == pytest.approx(expected.tolist())
    assert total.item() == pytest.approx(float(expected @ losses.detach()))
    dwa.on_epoch_end(2, {"a": 1.0, "b": 1.0, "c": 1.0})
    assert sorted(dwa.history) == [1, 2]  # only what the next epoch needs is kept
    dwa.on_epoch_end(3, {"a": 0.0, "b": 1.0, "c": 1.0})
    dwa.on_epoch_end(4, {"a": 1.0, "b": 1.0, "c": 1.0})
    step.epoch = 5
    with pytest.raises(ConfigError, match="task 'a' has mean loss 0 in epoch 3"):
        dwa.combine(losses, step)


def test_rlw_softmax_of_normal_draws(step):
    rlw = RandomLossWeighting(RandomLossWeighting.Config(seed=3), tasks=TASKS)
    losses = losses_of(1.0, 2.0, 4.0)
    reference = torch.Generator().manual_seed(3)
    for _ in range(3):
        total, weights = rlw.combine(losses, step)
        expected = torch.softmax(torch.randn(3, generator=reference, dtype=torch.float64), 0)
        assert weights.tolist() == pytest.approx(expected.tolist())
        assert total.item() == pytest.approx(float(expected @ losses.detach()))
        assert float(weights.sum()) == pytest.approx(1.0)


def test_gls_geometric_mean_and_effective_weights(step):
    gls = GeometricLossStrategy(GeometricLossStrategy.Config(), tasks=TASKS)
    losses = losses_of(1.0, 2.0, 4.0)
    total, weights = gls.combine(losses, step)
    assert total.item() == pytest.approx(8 ** (1 / 3))
    assert grad_of(total, losses).tolist() == pytest.approx(weights.tolist())  # GLS/(T L_t)
    assert weights.tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 6])
    with pytest.raises(ConfigError, match="task 'b' has loss -0.5 at step 0"):
        gls.combine(losses_of(1.0, -0.5, 2.0), step)


def test_famo_combine_and_logit_update(step):
    famo = FAMO(FAMO.Config(w_lr=0.1, gamma=0.0), tasks=("seg0", "reg1", "seg2"))
    losses = step.loss_vector()
    _, weights = famo.combine(losses, step)
    values = losses.detach().double()
    expected = (1 / (values + 1e-8)) / (1 / (values + 1e-8)).sum()  # z uniform at the start
    assert weights.tolist() == pytest.approx(expected.tolist())
    assert float(weights.sum()) == pytest.approx(1.0)
    leaf = losses.detach().clone().requires_grad_()
    assert grad_of(famo.combine(leaf, step)[0], leaf).tolist() == pytest.approx(expected.tolist(), rel=1e-5)

    # after the step, task 0 improved a lot, task 1 not at all, task 2 got worse
    after = {"seg0": losses[0].detach() * 0.5, "reg1": losses[1].detach(), "seg2": losses[2].detach() * 1.2}
    step.recompute_losses = lambda: after
    famo.after_step(step)
    delta = torch.tensor([math.log(2), 0.0, -math.log(1.2)])
    z = torch.full((3,), 1 / 3)
    grad = z * delta - z * (z @ delta)  # J_softmax(0)ᵀ δ
    assert famo.logits.detach().tolist() == pytest.approx((-0.1 * torch.sign(grad)).tolist(), rel=1e-4)  # Adam step 1
    new_z = torch.softmax(famo.logits.detach(), 0)
    assert float(new_z[0]) < min(float(new_z[1]), float(new_z[2]))  # the task that improved most gets less weight


def test_stch_warm_up_nadir_and_tchebycheff(step):
    stch = STCH(STCH.Config(mu=0.5, warmup_epoch=1), tasks=TASKS)
    losses = losses_of(1.0, 2.0, 4.0)
    step.epoch = 0
    total, weights = stch.combine(losses, step)
    assert total.item() == pytest.approx(math.log(8))
    assert weights.tolist() == pytest.approx([1, 0.5, 0.25])
    step.epoch = 1  # the warm-up epoch: the nadir is its mean loss
    stch.combine(losses_of(2.0, 2.0, 2.0), step)
    stch.combine(losses_of(4.0, 2.0, 6.0), step)
    step.epoch = 2
    total, weights = stch.combine(losses, step)
    nadir = torch.tensor([3.0, 2.0, 4.0], dtype=torch.float64)
    scaled = torch.log(losses.detach() / nadir) / 0.5
    assert total.item() == pytest.approx(3 * 0.5 * float(torch.logsumexp(scaled, 0)))
    assert grad_of(total, losses).tolist() == pytest.approx(weights.tolist())
    assert stch.state.nadir.tolist() == pytest.approx(nadir.tolist())


def test_stch_without_a_warm_up_epoch_explains(step):
    stch = STCH(STCH.Config(warmup_epoch=1), tasks=TASKS)
    step.epoch = 3
    with pytest.raises(ConfigError, match="without a nadir point"):
        stch.combine(losses_of(1.0, 2.0, 4.0), step)


def test_imtl_loss_side(step):
    imtl = IMTL(IMTL.Config(variant="loss"), tasks=TASKS)
    with torch.no_grad():
        imtl.log_scales.copy_(torch.tensor([0.0, 1.0, -1.0]))
    losses = losses_of(1.0, 2.0, 4.0)
    total, weights = imtl.combine(losses, step)
    s = [0.0, 1.0, -1.0]
    assert total.item() == pytest.approx(sum(math.exp(si) * v - si for si, v in zip(s, (1.0, 2.0, 4.0))), rel=1e-6)
    assert weights.tolist() == pytest.approx([math.exp(si) for si in s], rel=1e-6)
    (grad,) = torch.autograd.grad(total, imtl.log_scales)  # e^s L − 1
    assert grad.tolist() == pytest.approx([math.exp(si) * v - 1 for si, v in zip(s, (1.0, 2.0, 4.0))], rel=1e-6)


def test_log_based_weightings_reject_negative_losses_but_take_zero(step):
    famo = FAMO(FAMO.Config(), tasks=TASKS)
    with pytest.raises(ConfigError, match="famo needs non-negative task losses, but task 'b' has loss -0.1"):
        famo.combine(losses_of(1.0, -0.1, 2.0), step)
    stch = STCH(STCH.Config(), tasks=TASKS)
    for strategy in (famo, stch):  # their formulas carry an epsilon for a loss of exactly 0
        total, weights = strategy.combine(losses_of(0.0, 1.0, 2.0), step)
        assert math.isfinite(total.item()) and bool(torch.isfinite(weights).all())
