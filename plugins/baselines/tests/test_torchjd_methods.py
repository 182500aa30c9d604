"""ConFIG, DualProj and fixed weights against torchjd 0.18's ``ConFIG``, ``DualProj`` and ``Constant``.

torchjd is installed with this plugin (its backend for UPGrad, IMTL-G, PCGrad,
Aligned-MTL), so its aggregators are the originals run on the same inputs:
the same hand-made and random ``[T, N]`` matrices (float64) for the pure
aggregators, and the per-task gradients of a toy model for the strategies,
which take them from the core (``StepContext.shared_grads``, loop and
two-stage). Independently of torchjd, each is also checked against its
defining equations: ConFIG's equal cosines and projection length, DualProj's
optimality (KKT) conditions. Then: ``mtlx.MTL`` takes exactly the engine's
step, an AMP loss scale changes nothing, and ``fixed`` refuses bad weights at
start-up (exit 2, one line, no run directory).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torchjd import aggregation

import mtlx
from mtlx.config import build_component_config
from mtlx_baselines.plugin import STRATEGIES
from mtlx_baselines.strategies import conflict_free, dualproj
from mtlx_testing import ToyModel, flat, invoke_cli, make_step, task_gradients, toy_batch, toy_tasks


def G(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def random_G(num_tasks: int, seed: int, size: int = 30) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = torch.rand(num_tasks, 1, generator=g, dtype=torch.float64) + 0.1
    return torch.randn(num_tasks, size, generator=g, dtype=torch.float64) * scales


CASES = {
    "orthogonal": G((3, 0), (0, 1)),
    "conflicting": G((2, 1), (-1, 1)),
    "tv1": G((1, 2), (3, -1)),
    "tv3": G((1, 0), (-0.5, 1)),
    "identical": G((1, 2), (1, 2)),
    "zero-row": G((1, 2), (0, 0)),
    "near-parallel": G((1, 0.01), (1, -0.01)),
    "dependent": G((1, 0, 0), (0, 1, 0), (1, 1, 0)),
    "more-tasks-than-dims": G((1, 0), (0, 1), (1, 1)),
    **{f"random-{t}x30": random_G(t, seed=t) for t in (2, 3, 4, 6)},
    "random-5x3": random_G(5, seed=7, size=3),
}


def close(actual: torch.Tensor, expected: torch.Tensor, scale: float = 1.0, tol: float = 1e-10) -> None:
    actual, expected = actual.double(), expected.double()
    difference = float((actual - expected).abs().max())
    assert torch.allclose(actual, expected, atol=tol * scale, rtol=tol), \
        f"max |difference| {difference:.3g}: {actual.tolist()[:6]} != {expected.tolist()[:6]}"


# -- ConFIG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_matches_torchjd(case):
    grads = CASES[case]
    d, weights = conflict_free.aggregate(grads)
    close(d, aggregation.ConFIG()(grads), scale=float(grads.norm()))
    close(weights @ grads, d, scale=float(grads.norm()))


def test_config_gradients_that_cancel_give_zero():
    """U⁺1 = 0 exactly; torchjd normalises its rounding residue, a direction of size ~1e-8."""
    grads = G((1, 2), (-2, -4))
    d, weights = conflict_free.aggregate(grads)
    assert torch.equal(d, torch.zeros(2, dtype=torch.float64)) and torch.equal(weights, torch.zeros(2))
    assert float(aggregation.ConFIG()(grads).norm()) < 1e-7
    d, _ = conflict_free.aggregate(torch.zeros(3, 5, dtype=torch.float64))
    assert torch.equal(d, torch.zeros(5, dtype=torch.float64))


@pytest.mark.parametrize(("num_tasks", "seed"), [(2, 0), (3, 1), (5, 2), (8, 3)])
def test_config_equal_cosines_and_projection_length(num_tasks, seed):
    """Eq. 2 of the paper: every task's gradient makes the same (positive) angle with d, and
    ‖d‖ = Σ_t g_tᵀ d/‖d‖ (independent gradients, so U has full row rank)."""
    grads = random_G(num_tasks, seed)
    d, _ = conflict_free.aggregate(grads)
    unit = d / d.norm()
    cosines = grads @ unit / grads.norm(dim=1)
    assert float(cosines.min()) > 0
    close(cosines, cosines.mean().expand(num_tasks))
    assert float(d.norm()) == pytest.approx(float((grads @ unit).sum()), rel=1e-12)


def test_config_float32_drops_small_singular_values_as_torchjd_does():
    """In fp32, torch.linalg.pinv (torchjd) and lstsq (the official code) treat singular values of U below
    max(T, N)·ε·σ_max as zero: with N = 100,000 that is 1.2 % of σ_max, and here it changes the direction."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2, 100_000, generator=g)
    grads = torch.stack([base[0], base[1], base[0] + base[1] + 0.005 * torch.randn(100_000, generator=g)])
    units = grads.double() / grads.double().norm(dim=1, keepdim=True)
    singular = torch.linalg.svdvals(units)
    assert float(singular[-1] / singular[0]) < 100_000 * torch.finfo(torch.float32).eps  # below the cut-off
    d, _ = conflict_free.aggregate(grads)
    theirs = aggregation.ConFIG()(grads)
    assert float((d - theirs).norm() / theirs.norm()) < 1e-3
    exact, _ = conflict_free.aggregate(grads.double())  # float64: nothing dropped, another direction
    assert float((exact - theirs.double()).norm() / theirs.norm()) > 0.1


# -- DualProj -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_dualproj_matches_torchjd(case):
    grads = CASES[case]
    d, weights = dualproj.aggregate(grads)
    close(d, aggregation.DualProj()(grads), scale=float(grads.norm()), tol=1e-9)
    close(weights @ grads, d, scale=float(grads.norm()))


@pytest.mark.parametrize(("num_tasks", "seed"), [(2, 0), (3, 1), (5, 2), (8, 3)])
def test_dualproj_is_the_projection_of_the_mean(num_tasks, seed):
    """KKT of min ‖d − ḡ‖² s.t. G d ≥ 0, with d = Gᵀw: w = 1/T + λ, λ ≥ 0, G d ≥ 0, λ_t (g_t·d) = 0."""
    grads = random_G(num_tasks, seed)
    grads[1] = -0.8 * grads[0] + 0.2 * grads[1]  # a strong conflict, so some constraint is active
    d, weights = dualproj.aggregate(grads, reg_eps=0.0)
    scale = float(grads.norm()) ** 2
    slack, inner = weights - 1 / num_tasks, grads @ d
    assert float(slack.min()) > -1e-9 and float(inner.min()) > -1e-9 * scale
    close(slack * inner, torch.zeros(num_tasks), scale=scale, tol=1e-9)
    assert float(slack.max()) > 1e-3, "no constraint was active: the case tests nothing"


def test_dualproj_without_conflict_is_the_mean():
    d, weights = dualproj.aggregate(CASES["orthogonal"])
    close(weights, torch.full((2,), 0.5))
    close(d, CASES["orthogonal"].mean(0))


def test_dualproj_is_scale_invariant_where_torchjd_turns_into_the_mean():
    """torchjd zeroes K when tr K < 1e-4 (absolute), giving the plain mean; ours normalises first, as UPGrad."""
    grads = G((1, 0), (-3, 0.5))  # the mean (-1, 0.25) conflicts with g_1
    d, _ = dualproj.aggregate(grads)
    small, _ = dualproj.aggregate(grads * 1e-3)
    close(small, d * 1e-3, scale=1e-3)
    close(aggregation.DualProj()(grads * 1e-3), grads.mean(0) * 1e-3, scale=1e-3)
    assert float((small - grads.mean(0) * 1e-3).norm()) > 1e-4


# -- the strategies, through the core's per-task gradients ------------------------------------------

TASKS = toy_tasks(3)
FIXED = {"weights": "seg0:1,reg1:0.5,seg2:2"}
WEIGHTS = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
#: strategy -> (options, the torchjd aggregator that computes the shared update)
ORIGINALS = {
    "config": ({}, aggregation.ConFIG()),
    "dualproj": ({}, aggregation.DualProj()),
    "fixed": (FIXED, aggregation.Constant(WEIGHTS.float())),
}


def build(name: str, **options):
    cls = STRATEGIES[name]
    return cls(build_component_config(cls.Config, options, where=f"strategy {name!r}"), tasks=list(TASKS))


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_the_step_writes_torchjds_update_and_the_heads_get_their_gradients(name, float64_step):
    options, original = ORIGINALS[name]
    step, model = float64_step, float64_step.model
    shared, heads = list(model.encoder.parameters()), {t: list(model.heads[t].parameters()) for t in TASKS}
    jacobian, head_grads = task_gradients(step, shared, heads)
    result = build(name, **options).backward(step)
    # the core hands strategies fp32 gradients (mtlx.gradients), and torchjd gets them as they are
    close(flat(p.grad for p in shared), original(jacobian.float()), scale=float(jacobian.norm()), tol=1e-6)
    head_weights = WEIGHTS if name == "fixed" else torch.ones(3)  # a loss weighting; ∇L_t otherwise
    for i, t in enumerate(TASKS):
        close(flat(p.grad for p in heads[t]), head_weights[i] * head_grads[t], tol=1e-12)
    if name == "fixed":
        assert result.weights == dict(zip(TASKS, WEIGHTS.tolist(), strict=True))


MTL_CASES = [("config", {}), ("config", {"grad_mode": "rep"}), ("dualproj", {}), ("dualproj", {"grad_mode": "rep"}),
             ("fixed", FIXED), ("metabalance", {"target": "seg2"}), ("ldc-mtl", {"lamb": 0.5})]


@pytest.mark.parametrize(("name", "options"), MTL_CASES)
def test_a_user_loop_takes_the_engines_step(name, options):
    """Same model, batch and strategy: mtlx.MTL.backward and the engine's strategy.backward give equal .grad."""
    torch.manual_seed(0)
    model = ToyModel(TASKS).double()
    x, targets = toy_batch(TASKS)
    x = x.double()
    engine_strategy = build(name, **options)
    twin = copy.deepcopy(model)
    mtl = mtlx.MTL(name, tasks=list(TASKS), shared=twin.encoder, heads=dict(twin.heads), **options)
    for it in range(3):
        model.zero_grad(set_to_none=True)
        twin.zero_grad(set_to_none=True)
        engine_strategy.backward(make_step(model, x, targets, TASKS, iteration=it))
        z = twin.encoder(x)
        mtl.backward({t: spec.loss(twin.heads[t](z).float(), targets[t]) for t, spec in TASKS.items()}, features=z)
        mtl.step()
        for (param, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=lambda m, n=param: f"{n}: {m}")


@pytest.mark.parametrize(("name", "options"), MTL_CASES)
def test_an_amp_loss_scale_takes_the_unscaled_step(name, options):
    """``mtl.backward(losses, loss_scale=s)`` then ``scaler.step`` equals the plain step (the engine's AMP path)."""
    trained = {}
    for scaled in (False, True):
        torch.manual_seed(0)
        model = ToyModel(TASKS).double()
        mtl = mtlx.MTL(name, tasks=list(TASKS), shared=model.encoder, heads=dict(model.heads), **options)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=scaled)
        x, targets = toy_batch(TASKS)
        for _ in range(2):
            z = model.encoder(x.double())
            losses = {t: spec.loss(model.heads[t](z), targets[t]) for t, spec in TASKS.items()}
            optimizer.zero_grad()
            mtl.backward(losses, features=z, loss_scale=float(scaler.scale(torch.ones(()))) if scaled else 1.0)
            scaler.step(optimizer)
            scaler.update()
            mtl.step()
        trained[scaled] = copy.deepcopy(model.state_dict())
    for key, value in trained[False].items():
        torch.testing.assert_close(trained[True][key], value, rtol=1e-9, atol=1e-12)


# -- fixed: bad weights at start-up -----------------------------------------------------------------

TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-o", "dataset.num_tasks=3"]  # tasks seg0, reg1, seg2


@pytest.mark.parametrize(("weights", "message"), [
    (None, "strategy 'fixed' needs a weight for every task: -o strategy.weights=seg0:1,reg1:1,seg2:1"),
    ("seg0:1,reg1:0.5", "strategy 'fixed': no weight for task(s) ['seg2']"),
    ("seg0:1,reg1:0.5,seg2:1,depth:1", "strategy 'fixed': weights for unknown task(s) ['depth']"),
    ("seg0:1,reg:0.5,seg2:1", "unknown task(s) ['reg']; did you mean 'reg1'?"),
    ("seg0:1,reg1:-0.5,seg2:1", "weight of task 'reg1' is -0.5: weights must be finite and >= 0"),
    ("seg0:1,reg1:nan,seg2:1", "weight of task 'reg1' is nan: weights must be finite and >= 0"),
    ("seg0:inf,reg1:1,seg2:1", "weight of task 'seg0' is inf: weights must be finite and >= 0"),
    ("seg0:1,reg1,seg2:1", "'reg1' is not TASK:WEIGHT (weights look like seg:1,depth:0.5)"),
    ("seg0:1,reg1:x,seg2:1", "weight of task 'reg1' is 'x', not a number"),
    ("seg0:1,seg0:2,reg1:1,seg2:1", "weights name task 'seg0' twice"),
    ("seg0:0,reg1:0,seg2:0", "every weight is 0: nothing would be trained"),
    ("{seg0 = 1, reg1 = true, seg2 = 1}", "weight of task 'reg1' is True, not a number"),
])
def test_fixed_refuses_bad_weights_at_start_up(tmp_path, weights, message):
    option = [] if weights is None else ["-o", f"strategy.weights={weights}"]
    result = invoke_cli(*TOY, "-s", "fixed", *option, "-q", "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists(), "a refused start left a run directory"


def test_fixed_takes_a_toml_table(tmp_path):
    result = invoke_cli(*TOY, "-s", "fixed", "-o", "strategy.weights={seg0 = 1, reg1 = 0.5, seg2 = 2}", "-q",
                        "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "[strategy.weights]\nseg0 = 1\nreg1 = 0.5\nseg2 = 2\n" in (tmp_path / "run" / "config.toml").read_text()
