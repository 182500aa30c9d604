"""The rep-mtl strategy: parameter gradients against an independent computation, edge cases, delegation."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

import mtlx
from mtlx.config import build_component_config
from mtlx.engine.step import forward, task_losses
from mtlx.losses import classification_loss, mse_loss
from mtlx.metrics import AccuracyMeter, MAEMeter
from mtlx_repmtl import RepMTL, RepMTLConfig
from mtlx_repmtl import strategy as strategy_module
from mtlx_repmtl.losses import csa_terms, tsr_loss
from mtlx_testing import HeadTraversals, ToyModel, assert_strategy_state_roundtrip, make_step, toy_batch, toy_tasks

from .conftest import INSTALLED, ScaledWeighting, rep_mtl


def _grads(outputs, inputs, **options):
    """Reference gradients, zeros where an input is unused (materialize_grads, portable to torch 2.4)."""
    grads = torch.autograd.grad(outputs, inputs, allow_unused=True, **options)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs, strict=True))


def _setup(num_tasks: int = 3, batch: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    tasks = toy_tasks(num_tasks)
    model = ToyModel(tasks).double()
    x, targets = toy_batch(tasks, batch_size=batch, seed=seed)
    return tasks, model, x.double(), targets


def _weights(strategy: RepMTL, num_tasks: int) -> torch.Tensor:
    """The base's weights, recomputed independently (EW: ones; scaled-test: exp of its parameter)."""
    params = list(strategy.extra_parameters())
    return params[0].exp() if params else torch.ones(num_tasks)


def _reference(reps, losses, weights, cfg, naive, params, *, batch=None):
    """Per-task autograd.grad with create_graph, the naive losses, one gradient of the total."""
    sal = [torch.autograd.grad(loss, z, create_graph=True)[0][:batch] for loss, z in zip(losses, reps, strict=True)]
    total = (weights * torch.stack(losses)).sum()
    if cfg.use_tsr:
        total = total + cfg.fixed_lambdas()["tsr"] * naive.tsr(sal, cfg.eps)
    if cfg.use_csa:
        total = total + cfg.fixed_lambdas()["csa"] * naive.csa(
            sal, cfg.temperature, cfg.eps, cfg.csa_denominator, task_reduction=cfg.csa_tasks
        )
    return _grads(total, params)


def _reference_single_input(strategy, model, x, targets, tasks, naive):
    z = model.encode(x)
    preds = model.decode(z)
    losses = [spec.loss(preds[name].float(), targets[name]) for name, spec in tasks.items()]
    params = [*model.parameters(), *strategy.extra_parameters()]
    weights = _weights(strategy, len(tasks))
    return _reference([z] * len(tasks), losses, weights, strategy.config, naive, params)


def _strategy_grads(strategy, model, x, targets, tasks):
    for p in [*model.parameters(), *strategy.extra_parameters()]:
        p.grad = None
    result = strategy.backward(make_step(model, x, targets, tasks))
    return [p.grad for p in [*model.parameters(), *strategy.extra_parameters()]], result


CONFIGS = [  # paper mode: the fixed λ of Eq. 10
    {"mode": "paper"},
    {"mode": "paper", "csa_denominator": "infonce", "temperature": 0.5, "lambda_tsr": 1.3, "lambda_csa": 0.7},
    {"mode": "paper", "use_tsr": False},
    {"mode": "paper", "use_csa": False, "lambda_tsr": 1.5},
    {"mode": "paper", "csa_tasks": "sum", "lambda_csa": 0.4},
]


@pytest.mark.parametrize(("options", "num_tasks"), [(CONFIGS[0], 2)] + [(options, 3) for options in CONFIGS])
def test_gradients_match_independent_computation_ew(options, num_tasks, naive):
    """Every parameter's gradient equals per-task saliencies + naive regularisers + one backward (base ew)."""
    tasks, model, x, targets = _setup(num_tasks)
    strategy = rep_mtl(RepMTLConfig(**options), tasks=list(tasks))
    expected = _reference_single_input(strategy, model, x, targets, tasks, naive)
    got, result = _strategy_grads(strategy, model, x, targets, tasks)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-10)
    assert result.weights == {t: 1.0 for t in tasks}
    # the regularisers reach the encoder: its gradient differs from plain EW's
    plain = torch.autograd.grad(make_step(model, x, targets, tasks).loss_vector().sum(), model.encoder[0].weight)[0]
    assert not torch.allclose(plain, got[0])


def test_csa_tasks_reaches_the_gradient(naive):
    """``csa_tasks=sum`` gives CSA T times its mean-over-tasks weight at the same λ: the step's gradients are
    the reference's with CSA summed over tasks, equal to the mean reading at T·λ_csa, and not to it at λ_csa."""
    tasks, model, x, targets = _setup(3)
    options = {"mode": "paper", "lambda_tsr": 0.5, "lambda_csa": 0.2}
    summed = rep_mtl(RepMTLConfig(csa_tasks="sum", **options), tasks=list(tasks))
    expected = _reference_single_input(summed, model, x, targets, tasks, naive)
    got, _ = _strategy_grads(summed, model, x, targets, tasks)
    averaged, _ = _strategy_grads(rep_mtl(RepMTLConfig(**options), tasks=list(tasks)), model, x, targets, tasks)
    triple = rep_mtl(RepMTLConfig(**{**options, "lambda_csa": 0.6}), tasks=list(tasks))
    tripled, _ = _strategy_grads(triple, model, x, targets, tasks)
    for g, e, mean, mean_at_3_lambda in zip(got, expected, averaged, tripled, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-10)
        torch.testing.assert_close(g, mean_at_3_lambda, rtol=1e-6, atol=1e-10)
    assert not torch.allclose(got[0], averaged[0], rtol=1e-3)  # the encoder's first layer moves


@pytest.mark.parametrize("options", CONFIGS[1:2])
def test_gradients_match_with_another_base(options, naive, scaled_base):
    """With a learnable non-uniform base the weighted sum replaces Σ L_t; the base's parameter gets its gradient."""
    tasks, model, x, targets = _setup(3)
    strategy = rep_mtl(RepMTLConfig(base="scaled-test", **options), tasks=list(tasks), registries=scaled_base)
    assert isinstance(strategy.base, ScaledWeighting)
    expected = _reference_single_input(strategy, model, x, targets, tasks, naive)
    got, result = _strategy_grads(strategy, model, x, targets, tasks)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-10)
    expected_weights = dict(zip(tasks, torch.tensor([0.4, -0.3, 0.2]).exp().tolist(), strict=True))
    assert result.weights == pytest.approx(expected_weights)


LOSS_WEIGHTINGS = [
    name for name in INSTALLED.strategies.list() if issubclass(INSTALLED.strategies.get(name), mtlx.LossWeighting)
]
#: bases with a required option (the toy tasks' names)
BASE_OPTIONS = {"fixed": {"weights": "seg0:1,reg1:0.5,seg2:2"}}


@pytest.mark.parametrize("base", LOSS_WEIGHTINGS)
def test_every_installed_loss_weighting_composes(base, naive):
    """For each installed loss weighting: gradients = ∇[base.combine(L) + λ·regularisers] (an identical twin base)."""
    tasks, model, x, targets = _setup(3)
    config = RepMTLConfig(mode="paper", base=base, base_options=BASE_OPTIONS.get(base, {}))
    strategy = rep_mtl(config, tasks=list(tasks))
    twin = copy.deepcopy(strategy.base)
    z = model.encode(x)
    preds = model.decode(z)
    reference = mtlx.StepContext(
        model=model, losses={n: spec.loss(preds[n].float(), targets[n]) for n, spec in tasks.items()}, representation=z
    )
    torch.manual_seed(1)
    base_total, _ = twin.combine(reference.loss_vector(), reference)
    sal = [torch.autograd.grad(loss, z, create_graph=True)[0] for loss in reference.losses.values()]
    total = base_total + 0.9 * naive.tsr(sal) + 0.9 * naive.csa(sal)
    params = [*model.parameters(), *twin.extra_parameters()]
    expected = _grads(total, params)
    torch.manual_seed(1)
    got, _ = _strategy_grads(strategy, model, x, targets, tasks)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(torch.zeros_like(e) if g is None else g, e, rtol=1e-6, atol=1e-10)


def test_vector_representation(naive):
    """Z = [B, C] (image-level heads on an MLP encoder) works and matches the reference."""
    cls = mtlx.TaskSpec(
        name="cls", kind="classification", out_channels=3, dense=False, loss=classification_loss, meter=AccuracyMeter
    )
    reg = mtlx.TaskSpec(name="reg", kind="regression", out_channels=2, dense=False, loss=mse_loss, meter=MAEMeter)
    tasks = {"cls": cls, "reg": reg}
    torch.manual_seed(0)
    model = ToyModel(tasks, in_channels=5, channels=6, vector=True).double()
    x = torch.randn(5, 5, dtype=torch.float64)
    targets = {"cls": torch.tensor([0, 2, 1, 1, 0]), "reg": torch.randn(5, 2)}
    strategy = rep_mtl(RepMTLConfig(mode="paper"), tasks=list(tasks))
    expected = _reference_single_input(strategy, model, x, targets, tasks, naive)
    got, _ = _strategy_grads(strategy, model, x, targets, tasks)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("batches", [(4, 4, 4), (4, 3, 5)])
def test_multi_input_aligns_by_batch_index(batches, naive):
    """Multi-input: S_t = ∂L_t/∂Z_t of each task's own batch, aligned by index on the first min B_t samples."""
    tasks, model, _, _ = _setup(3)
    inputs, targets = {}, {}
    for seed, (name, batch) in enumerate(zip(tasks, batches, strict=True)):
        x, y = toy_batch(tasks, batch_size=batch, seed=seed + 10)
        inputs[name], targets[name] = x.double(), y[name]
    strategy = rep_mtl(RepMTLConfig(mode="paper", csa_denominator="infonce"), tasks=list(tasks))

    preds, reps = forward(model, inputs, multi_input=True)
    losses = list(task_losses(preds, targets, tasks).values())
    params = list(model.parameters())
    expected = _reference(
        [reps[t] for t in tasks], losses, torch.ones(3), strategy.config, naive, params, batch=min(batches)
    )

    preds, reps = forward(model, inputs, multi_input=True)
    step = mtlx.StepContext(model=model, losses=task_losses(preds, targets, tasks), representation=reps)
    strategy.backward(step)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-6, atol=1e-10)


def test_diagnostics_report_the_regularisers():
    """Logged values are the regularisers of the step's saliencies; entropy is normalised by log T."""
    tasks, model, x, targets = _setup(3)
    strategy = rep_mtl(RepMTLConfig(mode="paper"), tasks=list(tasks))
    step = make_step(model, x, targets, tasks)
    sal = torch.stack([torch.autograd.grad(step.losses[t], step.representation, retain_graph=True)[0] for t in tasks])
    result = strategy.backward(step)
    terms = csa_terms(sal)
    d = result.diagnostics
    assert d["tsr"] == pytest.approx(float(tsr_loss(sal)))
    assert d["entropy_normalized"] == pytest.approx(float(tsr_loss(sal)) / math.log(3))
    assert d["csa"] == pytest.approx(float(terms.loss))
    assert d["positive_sim"] == pytest.approx(float(terms.positive.mean()))
    off = ~torch.eye(4, dtype=torch.bool)
    assert d["negative_sim"] == pytest.approx(float(terms.anchor[off].mean()))
    for i, t in enumerate(tasks):
        assert d[f"saliency_norm.{t}"] == pytest.approx(float(sal[i].norm()))


@pytest.mark.parametrize("options", [{"mode": "paper"}, {"reg_params": "shared"}, {"balance_every": 1}])
def test_a_step_frees_the_graph_in_its_last_backward(options):
    """Like a plain ``loss.backward()``: nothing of the step's graph (saliency graph included) outlives its
    last pass, whatever passes the options add (two for reg_params=shared, the gauge's)."""
    tasks, model, x, targets = _setup(3)
    step = make_step(model, x, targets, tasks)
    rep_mtl(RepMTLConfig(**options), tasks=list(tasks)).backward(step)
    assert all(p.grad is not None for p in model.encoder.parameters())
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(step.losses[next(iter(tasks))], list(model.encoder.parameters()))


def test_amp_loss_scale_is_undone_in_the_saliency():
    """With an fp16 loss scale s, .grad is s times the unscaled gradient and the regularisers are unchanged."""
    tasks, model, x, targets = _setup(3)
    strategy = rep_mtl(RepMTLConfig(mode="paper"), tasks=list(tasks))
    _strategy_grads(strategy, model, x, targets, tasks)  # the first step also checks the balance (logged)
    unscaled, plain = _strategy_grads(strategy, model, x, targets, tasks)
    model.zero_grad(set_to_none=True)
    step = make_step(model, x, targets, tasks)
    step.loss_scale = 1024.0
    scaled = strategy.backward(step)
    for p, g in zip(model.parameters(), unscaled, strict=True):
        torch.testing.assert_close(p.grad / 1024.0, g, rtol=1e-9, atol=1e-12)
    assert scaled.diagnostics == pytest.approx(plain.diagnostics, rel=1e-9)


def test_both_regularisers_off_is_the_base():
    """use_tsr = use_csa = False: exactly EW's gradients, no saliency computed, nothing logged."""
    tasks, model, x, targets = _setup(3)
    strategy = rep_mtl(RepMTLConfig(mode="paper", use_tsr=False, use_csa=False), tasks=list(tasks))
    got, result = _strategy_grads(strategy, model, x, targets, tasks)
    expected = torch.autograd.grad(make_step(model, x, targets, tasks).loss_vector().sum(), list(model.parameters()))
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    assert result.diagnostics == {}


def test_single_sample_batch_warns_once(naive):
    """B = 1: CSA contributes 0 with one warning per strategy instance; TSR still applies."""
    tasks, model, x, targets = _setup(3, batch=1)
    strategy = rep_mtl(RepMTLConfig(mode="paper"), tasks=list(tasks))
    tsr_only = rep_mtl(RepMTLConfig(mode="paper", use_csa=False), tasks=list(tasks))
    expected = _reference_single_input(tsr_only, model, x, targets, tasks, naive)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, result = _strategy_grads(strategy, model, x, targets, tasks)
        _strategy_grads(strategy, model, x, targets, tasks)
    messages = [str(w.message) for w in caught if "no negatives" in str(w.message)]
    assert len(messages) == 1 and "batch_size >= 2" in messages[0]
    assert result.diagnostics["csa"] == 0.0 and "negative_sim" not in result.diagnostics
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize(("zero_heads", "denominator"), [(("reg1",), "paper"), (("seg0", "reg1", "seg2"), "infonce")])
def test_zero_saliency_gives_no_nan(zero_heads, denominator, naive):
    """A task whose head ignores Z (zero weights) has S_t = 0: losses, gradients and diagnostics stay finite."""
    tasks, model, x, targets = _setup(3)
    with torch.no_grad():
        for name in zero_heads:
            model.heads[name][1].weight.zero_()
    strategy = rep_mtl(RepMTLConfig(mode="paper", csa_denominator=denominator), tasks=list(tasks))
    expected = _reference_single_input(strategy, model, x, targets, tasks, naive)
    got, result = _strategy_grads(strategy, model, x, targets, tasks)
    assert all(torch.isfinite(g).all() for g in got)
    assert all(math.isfinite(v) for v in result.diagnostics.values())
    for name in zero_heads:
        assert result.diagnostics[f"saliency_norm.{name}"] == 0.0
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-10)


def test_bf16_autocast_keeps_regularisers_in_fp32(monkeypatch):
    """Under CPU bf16 autocast Z is bf16, but saliencies and regularisers are fp32 with autocast off; all finite."""
    seen = []

    def spy(fn):
        def wrapped(saliencies, *args, **kwargs):
            out = fn(saliencies, *args, **kwargs)
            loss = out if isinstance(out, torch.Tensor) else out.loss
            seen.append((saliencies.dtype, loss.dtype, torch.is_autocast_enabled("cpu")))
            return out
        return wrapped

    monkeypatch.setattr(strategy_module, "tsr_loss", spy(strategy_module.tsr_loss))
    monkeypatch.setattr(strategy_module, "csa_terms", spy(strategy_module.csa_terms))
    tasks = toy_tasks(3)
    torch.manual_seed(0)
    model = ToyModel(tasks)
    x, targets = toy_batch(tasks)
    strategy = rep_mtl(RepMTLConfig(mode="paper"), tasks=list(tasks))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        step = make_step(model, x, targets, tasks)
        assert step.representation.dtype == torch.bfloat16
        result = strategy.backward(step)
    assert seen == [(torch.float32, torch.float32, False)] * 2
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(math.isfinite(v) for v in result.diagnostics.values())


def test_refuses_a_step_without_representation():
    tasks, model, x, targets = _setup(2)
    step = make_step(model, x, targets, tasks)
    step.representation = None
    strategy = rep_mtl(RepMTLConfig(mode="paper"), tasks=list(tasks))
    with pytest.raises(mtlx.ConfigError, match="needs the shared representation Z.*--arch hps"):
        strategy.backward(step)
    assert RepMTL.needs is mtlx.Need.REPRESENTATION


def test_config_errors():
    with pytest.raises(mtlx.ConfigError, match=r"Rep-MTL needs >= 2 tasks"):
        rep_mtl(RepMTLConfig(mode="paper"), tasks=["only"])
    with pytest.raises(mtlx.ConfigError, match="rep-mtl base 'rep-mtl' .* is not a loss-weighting strategy.*ew"):
        rep_mtl(RepMTLConfig(mode="paper", base="rep-mtl"), tasks=["a", "b"])
    with pytest.raises(mtlx.UnknownComponentError, match="no strategy 'nope'"):
        rep_mtl(RepMTLConfig(mode="paper", base="nope"), tasks=["a", "b"])
    with pytest.raises(mtlx.ConfigError, match="rep-mtl base 'ew' has no option 'tau'"):
        rep_mtl(RepMTLConfig(base_options={"tau": 2}), tasks=["a", "b"])
    for bad in ({"temperature": 0}, {"csa_denominator": "nce"}, {"lambda_csa": -1}, {"eps": 0}):
        with pytest.raises(mtlx.ConfigError, match="invalid option for strategy 'rep-mtl'"):
            build_component_config(RepMTLConfig, bad, where="strategy 'rep-mtl'")


def test_delegates_to_the_base(scaled_base):
    """extra_parameters, after_step, on_epoch_end and state come from the base; base_options reach it."""
    tasks = ["a", "b", "c"]
    strategy = rep_mtl(RepMTLConfig(mode="paper", base="scaled-test"), tasks=tasks, registries=scaled_base)
    assert list(strategy.extra_parameters()) == [strategy.base.log_w]
    strategy.after_step(None)
    strategy.on_epoch_end(2, {})
    assert strategy.base.calls == ["after_step", "epoch_end:2"]
    state = strategy.state_dict()
    assert set(state) == {"base", "lambdas", "last_estimate"} and torch.equal(state["base"]["extra_parameters"][0], strategy.base.log_w)
    fresh_config = RepMTLConfig(mode="paper", base="scaled-test", base_options={"log_weights": (0.0, 0.0, 0.0)})
    fresh = rep_mtl(fresh_config, tasks=tasks, registries=scaled_base)
    assert torch.equal(fresh.base.log_w.detach(), torch.zeros(3))
    assert_strategy_state_roundtrip(strategy, fresh)
    assert torch.equal(fresh.base.log_w, strategy.base.log_w)


def test_gradient_balance_is_the_ratio_of_the_parameter_gradients(naive):
    """balance_every=k logs ‖∇λR‖/‖∇ΣL‖ over shared and head parameters, from an independent computation."""
    tasks, model, x, targets = _setup(3)
    cfg = RepMTLConfig(mode="paper", balance_every=2, lambda_tsr=0.7, lambda_csa=1.3)
    strategy = rep_mtl(cfg, tasks=list(tasks))
    z = model.encode(x)
    preds = model.decode(z)
    losses = [spec.loss(preds[name], targets[name]) for name, spec in tasks.items()]
    sal = [torch.autograd.grad(loss, z, create_graph=True)[0] for loss in losses]
    terms = {"tsr": cfg.fixed_lambdas()["tsr"] * naive.tsr(sal, cfg.eps), "csa": cfg.fixed_lambdas()["csa"] * naive.csa(sal, 0.1, cfg.eps, "paper")}
    shared = list(model.shared_parameters())
    heads = [p for t in tasks for p in model.task_parameters(t)]

    def norm(loss, params):
        grads = _grads(loss, params, retain_graph=True)
        return float(torch.cat([g.flatten() for g in grads]).norm())

    # steps 1 (paper mode checks the balance on its first step), 3, 4 (1-based)
    for iteration, logged in ((0, True), (2, False), (3, True)):
        d = strategy.backward(make_step(model, x, targets, tasks, iteration=iteration)).diagnostics
        assert ("grad_ratio.tsr.shared" in d) is logged
    for name, term in terms.items():
        for group, params in (("shared", shared), ("heads", heads)):
            expected = norm(term, params) / norm(sum(losses), params)
            assert d[f"grad_ratio.{name}.{group}"] == pytest.approx(expected, rel=1e-6)
    off = rep_mtl(RepMTLConfig(mode="paper"), tasks=list(tasks))
    off.backward(make_step(model, x, targets, tasks))
    assert not any(k.startswith("grad_ratio") for k in off.backward(make_step(model, x, targets, tasks)).diagnostics)


@pytest.mark.parametrize("options", [{}, {"use_csa": False}, {"base": "dwa"}])
def test_step_traverses_each_head_only_as_the_exact_gradient_needs(options):
    """Saliency of task t through head t only; the one backward: each head once, its saliency graph once."""
    tasks, model, x, targets = _setup(3)
    strategy = rep_mtl(RepMTLConfig(**options), tasks=list(tasks))
    strategy.backward(make_step(model, x, targets, tasks))  # the first step estimates the weights (extra passes)
    counter = HeadTraversals(model.heads)
    with counter.counting():
        step = make_step(model, x, targets, tasks, iteration=1)
    strategy.backward(step)
    assert [counter.first(t) for t in tasks] == [2] * 3  # saliency + the total's backward
    assert [counter.second(t) for t in tasks] == [1] * 3  # the regularisers through S_t
    assert [counter.batched(t) for t in tasks] == [0] * 3


def test_the_base_comes_from_the_registries_the_build_was_given():
    """A run built from its own registries (no global plugin manager) takes its base weighting from them."""
    from mtlx.build import build_strategy
    from mtlx.config import resolve_run_config
    from mtlx.registry import Registries

    registries = Registries()
    registries.strategies.register("rep-mtl", RepMTL)
    registries.strategies.register("ew", ScaledWeighting)  # this run's "ew" is not the installed one
    config = resolve_run_config([{"strategy.name": "rep-mtl", "dataset.name": "digits"}])
    tasks = toy_tasks(3)
    strategy = build_strategy(config, list(tasks), ToyModel(tasks), registries)
    assert isinstance(strategy.base, ScaledWeighting)


def test_rep_mtl_looks_no_strategy_up_by_itself():
    """Its base is given (built from the run's registries): never taken from the installed plugins behind the
    caller's back, so registries without the base it names refuse it."""
    from mtlx.registry import Registries

    with pytest.raises(TypeError, match="base"):
        RepMTL(RepMTLConfig(), tasks=["a", "b"])
    registries = Registries()
    registries.strategies.register("rep-mtl", RepMTL)
    with pytest.raises(mtlx.UnknownComponentError, match="no strategy 'ew'"):
        rep_mtl(RepMTLConfig(), tasks=["a", "b"], registries=registries)


@pytest.mark.filterwarnings("ignore:rep-mtl \\(mode=paper\\). the regularisers:RuntimeWarning")
@pytest.mark.parametrize("options", [{}, {"mode": "paper"}, {"estimate_every": 1, "reg_params": "shared"}, {"base": "dwa"}])
def test_rep_mtl_conforms(options):
    from mtlx_testing import check_strategy

    check_strategy("rep-mtl", options)
