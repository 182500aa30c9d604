"""MetaBalance: the update on given gradients against a naive float64 transcription of the paper's algorithm
(and the released optimiser's per-tensor loop) written here, hand values, the step through the core's
per-task gradients, conformance with exact resume, mtlx.MTL = the engine's step, a digits run, bad input.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import mtlx
from mtlx.config import build_component_config
from mtlx_baselines.plugin import STRATEGIES
from mtlx_baselines.strategies.metabalance import MetaBalanceState, aggregate
from mtlx_testing import (
    ToyModel,
    assert_refused_at_start_up,
    check_strategy,
    flat,
    invoke_cli,
    make_step,
    task_gradients,
    toy_batch,
    toy_tasks,
)

TASKS = toy_tasks(3)


def naive_metabalance(G, norms, target, parts, r, beta, adapt):
    """One step on lists of float64 rows: per part, m ← βm + (1−β)‖g‖; auxiliary g ← r(m_tar/m)g + (1−r)g
    where ``adapt`` allows it; d = Σ_t g_t. Returns d and the new norms."""
    T, d, start = len(G), [], 0
    norms = [row[:] for row in norms]
    for k, size in enumerate(parts):
        cols = range(start, start + size)
        for t in range(T):
            norm = math.sqrt(sum(G[t][n] ** 2 for n in cols))
            norms[t][k] = beta * norms[t][k] + (1 - beta) * norm
        for n in cols:
            total = 0.0
            for t in range(T):
                m_t, m_tar = norms[t][k], norms[target][k]
                larger, smaller = m_t > m_tar, m_t < m_tar
                wanted = {"all": True, "reduce": larger, "enlarge": smaller}[adapt]
                if t == target or m_t == 0 or not wanted:
                    total += G[t][n]
                else:
                    total += r * (m_tar / m_t) * G[t][n] + (1 - r) * G[t][n]
            d.append(total)
        start += size
    return d, norms


@pytest.mark.parametrize("adapt", ["all", "reduce", "enlarge"])
@pytest.mark.parametrize("target", [0, 2])
def test_the_update_matches_the_naive_transcription_over_steps(adapt, target):
    state, parts = MetaBalanceState(), [3, 1, 4]
    norms = [[0.0] * len(parts) for _ in range(3)]
    generator = torch.Generator().manual_seed(target)
    for _ in range(5):  # the moving averages carry over: the state is checked too
        scales = torch.tensor([[1.0], [10.0], [0.1]], dtype=torch.float64)  # magnitudes far apart
        G = torch.randn(3, 8, generator=generator, dtype=torch.float64) * scales
        d, weights = aggregate(G, state=state, target=target, parts=parts, relax_factor=0.7, beta=0.9, adapt=adapt)
        d_ref, norms = naive_metabalance(G.tolist(), norms, target, parts, 0.7, 0.9, adapt)
        torch.testing.assert_close(d, torch.tensor(d_ref, dtype=torch.float64), rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(state.norms, torch.tensor(norms, dtype=torch.float64), rtol=1e-13, atol=0)
        if len(parts) == 1:
            torch.testing.assert_close(weights @ G, d)


def test_hand_values_over_two_steps():
    """Target g = (3, 4), auxiliary (0, 1); m = 0.1·(5, 1) so the auxiliary is scaled by 0.7·5 + 0.3 = 3.8.
    Then target (0, 2), auxiliary (0, 1): m = (0.65, 0.19), scale 0.7·0.65/0.19 + 0.3."""
    state = MetaBalanceState()
    d, weights = aggregate(torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64), state=state)
    assert d.tolist() == pytest.approx([3.0, 4.0 + 3.8], abs=1e-14)
    assert weights.tolist() == pytest.approx([1.0, 3.8], abs=1e-14)
    d, weights = aggregate(torch.tensor([[0.0, 2.0], [0.0, 1.0]], dtype=torch.float64), state=state)
    scale = 0.7 * 0.65 / 0.19 + 0.3
    assert state.norms[:, 0].tolist() == pytest.approx([0.65, 0.19], abs=1e-14)
    assert d.tolist() == pytest.approx([0.0, 2.0 + scale], abs=1e-13)
    assert weights.tolist() == pytest.approx([1.0, scale], abs=1e-13)


def test_relax_factor_one_gives_the_target_magnitude_and_zero_the_sum():
    G = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 20.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    d, _ = aggregate(G, state=MetaBalanceState(), relax_factor=1.0)
    assert d.tolist() == pytest.approx([3.0 + 5.0, 4.0, 5.0], abs=1e-13)  # each auxiliary has ‖g‖ = 5 now
    d, weights = aggregate(G, state=MetaBalanceState(), relax_factor=0.0)
    assert d.tolist() == G.sum(0).tolist() and weights.tolist() == [1.0, 1.0, 1.0]


def test_reduce_and_enlarge_adapt_only_their_side():
    G = torch.tensor([[1.0, 0.0], [0.0, 4.0], [0.0, 0.25]], dtype=torch.float64)  # one larger, one smaller
    _, reduce = aggregate(G, state=MetaBalanceState(), relax_factor=1.0, adapt="reduce")
    _, enlarge = aggregate(G, state=MetaBalanceState(), relax_factor=1.0, adapt="enlarge")
    assert reduce.tolist() == pytest.approx([1.0, 0.25, 1.0]) and enlarge.tolist() == pytest.approx([1.0, 1.0, 4.0])


def test_a_part_without_gradient_keeps_scale_one_and_stays_finite():
    G = torch.tensor([[1.0, 2.0], [0.0, 3.0]], dtype=torch.float64)  # task 1 never reaches part 0
    d, _ = aggregate(G, state=MetaBalanceState(), parts=[1, 1])
    assert torch.isfinite(d).all() and d.tolist() == pytest.approx([1.0, 2.0 + (0.7 * 2 / 3 + 0.3) * 3.0])


# -- through the core's per-task gradients -------------------------------------------------------------


def build(**options):
    cls = STRATEGIES["metabalance"]
    return cls(build_component_config(cls.Config, options, where="strategy 'metabalance'"), tasks=list(TASKS))


def test_the_step_balances_each_parameter_tensor_and_heads_get_their_gradients(float64_step):
    step, model = float64_step, float64_step.model
    shared, heads = list(model.encoder.parameters()), {t: list(model.heads[t].parameters()) for t in TASKS}
    jacobian, head_grads = task_gradients(step, shared, heads)
    build(target="reg1").backward(step)
    parts = [p.numel() for p in shared]
    assert len(parts) > 1
    expected, _ = naive_metabalance(jacobian.tolist(), [[0.0] * len(parts)] * 3, 1, parts, 0.7, 0.9, "all")
    # the core hands strategies fp32 gradients
    torch.testing.assert_close(flat(p.grad for p in shared), torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-5, atol=1e-6 * float(jacobian.norm()))
    for t in TASKS:
        torch.testing.assert_close(flat(p.grad for p in heads[t]), head_grads[t], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", [{}, {"target": "seg2", "adapt": "reduce", "relax_factor": 1.0}])
def test_conformance_with_exact_resume(options):
    check_strategy("metabalance", options)


def test_a_user_loop_takes_the_engines_step():
    """Same model, batch and strategy: mtlx.MTL.backward and the engine's strategy.backward give equal .grad."""
    torch.manual_seed(0)
    model = ToyModel(TASKS).double()
    twin = copy.deepcopy(model)
    engine_strategy = build(target="seg2")
    mtl = mtlx.MTL("metabalance", tasks=list(TASKS), shared=twin.encoder, heads=dict(twin.heads), target="seg2")
    for it in range(3):  # the moving averages change between steps
        x, targets = toy_batch(TASKS, seed=it)
        model.zero_grad(set_to_none=True)
        twin.zero_grad(set_to_none=True)
        engine_strategy.backward(make_step(model, x.double(), targets, TASKS, iteration=it))
        z = twin.encoder(x.double())
        mtl.backward({t: spec.loss(twin.heads[t](z).float(), targets[t]) for t, spec in TASKS.items()}, features=z)
        mtl.step()
        for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=lambda m, n=name: f"{n}: {m}")


# -- the CLI ------------------------------------------------------------------------------------------------

TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-o", "dataset.num_tasks=3"]  # tasks seg0, reg1, seg2


@pytest.mark.parametrize(("option", "message"), [
    ("strategy.target=depth", "strategy 'metabalance': target 'depth' is not a task (tasks: seg0, reg1, seg2)"),
    ("strategy.target=reg", "target 'reg' is not a task; did you mean 'reg1'?"),
    ("strategy.adapt=both", "adapt"),
    ("strategy.relax_factor=1.5", "relax_factor"),
    ("strategy.beta=1", "beta"),
])
def test_bad_options_are_refused_at_start_up(tmp_path, option, message):
    result = invoke_cli(*TOY, "-s", "metabalance", "-o", option, "-q", "--out", tmp_path / "run")
    assert_refused_at_start_up(result, message, tmp_path / "run")


@pytest.mark.slow
def test_a_digits_run(tmp_path):
    result = invoke_cli("run", "-s", "metabalance", "-d", "digits", "--threads", "1", "--device", "cpu", "-q",
                        "-o", "dataset.train_size=256", "-o", "dataset.val_size=64", "-o", "dataset.test_size=64",
                        "--epochs", "1", "-o", "strategy.target=depth", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "results.json").exists()
