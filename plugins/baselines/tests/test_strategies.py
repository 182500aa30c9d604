"""The strategies in a training loop: registration, finite steps, exact resume, gradient policies, errors."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
import torch
from torch import nn

import mtlx_baselines
from mtlx import ConfigError, MultiTaskModel, Need, PluginManager, StepContext
from mtlx.config import build_component_config
from mtlx_baselines.errors import SolverError
from mtlx_baselines.plugin import STRATEGIES
from mtlx_baselines.strategies import db_mtl, excess_mtl, graddrop, gradvac, imtl, mgda, moco, nash_mtl
from mtlx_testing import HeadTraversals, ToyModel, check_strategy, make_step, toy_batch, toy_tasks

TASKS = toy_tasks(3)


def build(name: str, **options) -> object:
    cls = STRATEGIES[name]
    return cls(build_component_config(cls.Config, options, where=f"strategy {name!r}"), tasks=list(TASKS))


#: options without a default (fixed: a weight for every toy task)
REQUIRED = {"fixed": {"weights": "seg0:1,reg1:0.5,seg2:2"}}


def setup(name: str, seed: int, **options):
    torch.manual_seed(seed)
    model = ToyModel(TASKS)
    strategy = build(name, **REQUIRED.get(name, {}), **options)
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.extra_parameters()], lr=1e-2)
    return model, strategy, optimizer


def test_every_strategy_of_the_issue_is_registered_by_this_plugin():
    registry = PluginManager().registries.strategies
    expected = ["ew", "uw", "dwa", "rlw", "gls", "gradnorm", "mgda", "pcgrad", "graddrop", "gradvac", "imtl",
                "cagrad", "nash-mtl", "aligned-mtl", "db-mtl", "famo", "fairgrad", "stch", "moco", "upgrad",
                "excess-mtl", "config", "dualproj", "fixed", "modo", "sdmgrad", "igbv1", "igbv2", "auto-lambda",
                "moml", "forum", "metabalance", "ldc-mtl", "mtadam"]
    assert list(STRATEGIES) == expected
    for name in expected:
        entry = registry.entry(name)
        assert entry.obj is STRATEGIES[name] and "mtlx-baselines" in entry.owner


REP_MODE = [name for name, cls in STRATEGIES.items() if "grad_mode" in attrs.fields_dict(cls.Config)]


def extras(strategy) -> list:
    """The extra batches of a strategy drawing several per step (MoDo, SDMGrad), none for the others."""
    return [toy_batch(TASKS, seed=100 + j) for j in range(1, strategy.batches_per_step)]


def heldout(strategy) -> dict:
    """A bilevel strategy's held-out batch and learning rate (Auto-Lambda), nothing for the others."""
    return {} if strategy.heldout_split is None else {"heldout_batch": toy_batch(TASKS, seed=99), "learning_rate": 0.1}


@pytest.mark.parametrize("grad_method", ["loop", "two-stage"])
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_step_backpropagates_each_head_at_most_twice(name, grad_method):
    """Per-task gradients from each task's own loss (once per head) plus the heads' own gradients (once):
    no strategy pays for a stacked loss vector's T traversals per head."""
    model, strategy, _ = setup(name, 0)
    counter = HeadTraversals(model.heads)
    x, y = toy_batch(TASKS, seed=0)
    for it in range(2):  # the second step of epoch-0 strategies (GradNorm) is the gradient step
        counter.reset()
        with counter.counting():
            step = make_step(model, x, y, TASKS, iteration=it, grad_method=grad_method, extra_batches=extras(strategy),
                             **heldout(strategy))
        step.epoch = it
        strategy.backward(step)
        strategy.on_epoch_end(it, {t: float(v.detach()) for t, v in step.losses.items()})
        assert all(counter.first(t) <= 2 * strategy.batches_per_step for t in TASKS), dict(counter.counts)
        assert all(counter.batched(t) == 0 and counter.second(t) == 0 for t in TASKS), dict(counter.counts)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_step_frees_the_graph_in_its_last_backward(name):
    """As a plain ``loss.backward()`` does: a graph retained past the step's last pass holds every saved
    activation until the step is dropped and costs a few per cent of the step (benchmarks/README.md)."""
    model, strategy, _ = setup(name, 0, **({"initial_loss": "first-step"} if name == "gradnorm" else {}))
    x, y = toy_batch(TASKS, seed=0)
    step = make_step(model, x, y, TASKS, extra_batches=extras(strategy), **heldout(strategy))
    strategy.backward(step)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(step.losses[next(iter(TASKS))], list(model.encoder.parameters()))


def test_representation_mode_is_offered_where_it_makes_sense():
    assert REP_MODE == ["mgda", "pcgrad", "gradvac", "imtl", "cagrad", "nash-mtl", "aligned-mtl", "fairgrad",
                        "upgrad", "config", "dualproj"]
    assert STRATEGIES["graddrop"].needs is Need.REPRESENTATION


def encoder_grads(model: ToyModel) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.encoder.parameters()])


def head_grads(model: ToyModel, task: str) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.heads[task].parameters()])


def reference_step(seed: int = 0):
    torch.manual_seed(seed)
    model = ToyModel(TASKS)
    x, y = toy_batch(TASKS, seed=seed)
    return model, make_step(model, x, y, TASKS, iteration=0)


def plain_grads(model: ToyModel, loss: torch.Tensor, params) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(params), retain_graph=True)])


def test_mgda_rep_mode_backpropagates_the_aggregate_through_z():
    model, step = reference_step()
    z = step.representation
    rep = torch.stack([torch.autograd.grad(step.losses[t], z, retain_graph=True)[0] for t in TASKS])
    d, _ = mgda.aggregate(rep.flatten(1))
    expected = plain_grads(model, (z * d.view_as(z)).sum(), model.encoder.parameters())
    heads = {t: plain_grads(model, step.losses[t], model.heads[t].parameters()) for t in TASKS}
    build("mgda", grad_mode="rep").backward(step)
    assert torch.allclose(encoder_grads(model), expected, atol=1e-6)
    for t in TASKS:  # heads: the unweighted ∇L_t (LibMTL's convention)
        assert torch.allclose(head_grads(model, t), heads[t])


def test_nash_mtl_weights_the_heads_and_clips_the_shared_update():
    model, step = reference_step()
    shared = list(model.encoder.parameters())
    G = torch.stack([plain_grads(model, step.losses[t], shared) for t in TASKS])
    d, alpha = nash_mtl.aggregate(G, max_norm=0.0)
    heads = {t: plain_grads(model, step.losses[t], model.heads[t].parameters()) for t in TASKS}
    build("nash-mtl", max_norm=0.0).backward(step)
    assert torch.allclose(encoder_grads(model), d, atol=1e-6)
    for i, t in enumerate(TASKS):
        assert torch.allclose(head_grads(model, t), alpha[i] * heads[t], atol=1e-6)


def test_nash_mtl_reuses_its_weights_between_updates_without_per_task_gradients():
    strategy = build("nash-mtl", update_weights_every=2, max_norm=0.5)
    model, step = reference_step(0)
    strategy.backward(step)
    alpha = strategy.state.alpha.clone()
    model, step = reference_step(1)
    total = (alpha.to(step.loss_vector()) * step.loss_vector()).sum()
    expected = nash_mtl.clip(plain_grads(model, total, model.encoder.parameters()), 0.5)
    strategy.backward(step)
    assert not step._shared_grads, "a reuse step computed per-task gradients"
    assert torch.allclose(encoder_grads(model), expected, atol=1e-6)
    assert float(encoder_grads(model).norm()) == pytest.approx(min(0.5, float(expected.norm())), rel=1e-5)
    assert torch.equal(strategy.state.alpha, alpha) and strategy.state.steps == 2


def test_imtl_hybrid_scales_then_equalises():
    strategy = build("imtl")
    with torch.no_grad():
        strategy.log_scales.copy_(torch.tensor([0.3, -0.2, 0.1]))
    model, step = reference_step()
    scales = strategy.log_scales.detach().exp()
    shared = list(model.encoder.parameters())
    G = torch.stack([scales[i] * plain_grads(model, step.losses[t], shared) for i, t in enumerate(TASKS)])
    d, _ = imtl.aggregate(G)
    heads = {t: plain_grads(model, step.losses[t], model.heads[t].parameters()) for t in TASKS}
    strategy.backward(step)
    assert torch.allclose(encoder_grads(model), d, atol=1e-6)
    losses = step.loss_vector().detach()
    assert torch.allclose(strategy.log_scales.grad, scales * losses - 1, atol=1e-6)  # ∂(e^s L − s)/∂s
    for i, t in enumerate(TASKS):
        assert torch.allclose(head_grads(model, t), scales[i] * heads[t], atol=1e-6)


def test_db_mtl_heads_get_the_log_loss_gradient():
    model, step = reference_step()
    heads = {t: plain_grads(model, torch.log(step.losses[t] + 1e-8), model.heads[t].parameters()) for t in TASKS}
    build("db-mtl").backward(step)
    for t in TASKS:
        assert torch.allclose(head_grads(model, t), heads[t], atol=1e-6)


def test_graddrop_with_full_leak_is_the_plain_sum():
    model, step = reference_step()
    expected = plain_grads(model, step.loss_vector().sum(), model.encoder.parameters())
    result = build("graddrop", leak=1.0, seed=0).backward(step)
    assert torch.allclose(encoder_grads(model), expected, atol=1e-6)
    assert result.weights is None and all(v == 1.0 for v in result.diagnostics.values())


def test_graddrop_masks_per_feature_and_broadcasts_over_the_batch():
    model, step = reference_step()
    z = step.representation
    rep = torch.stack([torch.autograd.grad(step.losses[t], z, retain_graph=True)[0] for t in TASKS])
    signal = (torch.sign(z.detach()) * rep).sum(1).flatten(1)
    factors = graddrop.masks(signal, generator=torch.Generator().manual_seed(4))
    direction = (factors.view(3, 1, *z.shape[1:]) * rep).sum(0)
    expected = plain_grads(model, (z * direction).sum(), model.encoder.parameters())
    build("graddrop", seed=4).backward(step)
    assert torch.allclose(encoder_grads(model), expected, atol=1e-6)


def test_gradnorm_is_ew_in_epoch_zero_then_balances():
    strategy = build("gradnorm")
    model, step = reference_step()
    assert strategy.backward(step).weights == dict.fromkeys(TASKS, 1.0)
    assert strategy.logits.grad is None
    strategy.on_epoch_end(0, {t: 2 * step.losses[t].item() for t in TASKS})
    model, step = reference_step(1)
    shared = list(model.encoder.parameters())
    G = torch.stack([plain_grads(model, step.losses[t], shared) for t in TASKS])
    strategy.backward(step)
    weights = 3 * torch.softmax(strategy.logits.detach(), 0)
    assert torch.allclose(encoder_grads(model), weights @ G, atol=1e-6)
    # ω's gradient: d/dω Σ|w_t ‖g_t‖ − sg(mean(w‖g‖) r_t^1.5)|, r from L/L(0)
    omega = strategy.logits.detach().clone().requires_grad_()
    norms = 3 * torch.softmax(omega, 0) * G.norm(dim=1)
    relative = step.loss_vector().detach() / (2 * step.loss_vector().detach())
    target = (norms.mean() * (relative / relative.mean()) ** 1.5).detach()
    (expected,) = torch.autograd.grad((norms - target).abs().sum(), omega)
    assert torch.allclose(strategy.logits.grad, expected, atol=1e-6)


class Linear(MultiTaskModel):
    """Shared θ ∈ R^P, L_t = g_t·θ + 1, so ∇L_t = g_t exactly: the hand-made G of the aggregator tests."""

    has_shared_representation = True

    def __init__(self, grads: torch.Tensor):
        super().__init__({f"t{i}": None for i in range(grads.shape[0])})
        self.grads = grads
        self.theta = nn.Parameter(torch.zeros(grads.shape[1], dtype=grads.dtype))

    def forward(self, x):  # pragma: no cover - the step is built by hand
        raise NotImplementedError

    def shared_parameters(self):
        return [self.theta]

    def task_parameters(self, task):
        return []

    def step(self, iteration: int = 0, epoch: int = 0) -> StepContext:
        losses = {t: self.grads[i] @ self.theta + 1.0 for i, t in enumerate(self.task_names)}
        return StepContext(model=self, losses=losses, iteration=iteration, epoch=epoch)


ORTHOGONAL = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
AGGREGATE_KWARGS: dict[str, Callable[[], dict]] = {
    "mgda": dict,
    "pcgrad": lambda: {"generator": torch.Generator().manual_seed(0)},
    "upgrad": dict,
    "cagrad": dict,
    "aligned-mtl": dict,
    "nash-mtl": dict,
    "fairgrad": dict,
    "gradvac": lambda: {"generator": torch.Generator().manual_seed(0), "state": gradvac.GradVacState()},
    "moco": lambda: {"losses": torch.ones(2, dtype=torch.float64), "state": moco.MoCoState()},
    "excess-mtl": lambda: {"state": excess_mtl.ExcessMTLState()},
    "db-mtl": lambda: {"state": db_mtl.DBMTLState()},
}


@pytest.mark.parametrize("name", sorted(AGGREGATE_KWARGS))
@pytest.mark.parametrize("grads", [ORTHOGONAL, torch.tensor([[2.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)],
                         ids=["orthogonal", "conflicting"])
def test_the_strategy_writes_its_aggregate_into_the_shared_gradient(name, grads):
    model = Linear(grads)
    options = {"seed": 0} if name in ("pcgrad", "gradvac") else {}
    STRATEGIES[name](STRATEGIES[name].Config(**options), tasks=model.task_names).backward(model.step())
    G = grads / (1 + 1e-8) if name == "db-mtl" else grads  # DB-MTL aggregates ∇log(L + 1e-8), L = 1 here
    expected, _ = mtlx_baselines.aggregator(name)(G, **AGGREGATE_KWARGS[name]())
    assert torch.allclose(model.theta.grad, expected, atol=1e-12)


def test_imtl_strategy_on_the_verified_orthogonal_vector():
    model = Linear(ORTHOGONAL)
    strategy = STRATEGIES["imtl"](STRATEGIES["imtl"].Config(variant="gradient"), tasks=model.task_names)
    result = strategy.backward(model.step())
    assert model.theta.grad.tolist() == pytest.approx([0.75, 0.75])
    assert list(result.weights.values()) == pytest.approx([0.25, 0.75])


def test_solver_failures_name_the_step():
    model = Linear(torch.tensor([[1.0, 0.0], [-2.0, 0.0]], dtype=torch.float64))
    with pytest.raises(SolverError, match=r"step 5 \(epoch 2\): no α-fair \(Nash\) weights exist"):
        build_for(model, "nash-mtl").backward(model.step(iteration=5, epoch=2))
    model = Linear(torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match=r"step 3 \(epoch 1\): task\(s\) \[1\] have a zero gradient"):
        build_for(model, "fairgrad").backward(model.step(iteration=3, epoch=1))


def build_for(model: Linear, name: str):
    return STRATEGIES[name](STRATEGIES[name].Config(), tasks=model.task_names)


def test_rep_mode_needs_a_single_shared_representation():
    model = Linear(ORTHOGONAL)
    strategy = STRATEGIES["mgda"](STRATEGIES["mgda"].Config(grad_mode="rep"), tasks=model.task_names)
    with pytest.raises(ConfigError, match="grad_mode=rep needs an architecture with one shared representation"):
        strategy.backward(model.step())
    multi = model.step()
    multi.representation = {"t0": torch.zeros(1), "t1": torch.zeros(1)}
    with pytest.raises(ConfigError, match="multi-input dataset gives each task its own Z"):
        strategy.backward(multi)


def test_invalid_options_are_config_errors():
    with pytest.raises(ConfigError, match="strategy 'mgda' has no option 'grad'"):
        build("mgda", grad="rep")
    with pytest.raises(ConfigError, match="invalid option for strategy 'cagrad'"):
        build("cagrad", rescale=3)
    with pytest.raises(ConfigError, match="invalid option for strategy 'upgrad'"):
        build("upgrad", grad_mode="z")
    with pytest.raises(ConfigError, match="gradvac with grad_mode=rep has no parameter groups"):
        build("gradvac", grad_mode="rep", group_type=2)
    with pytest.raises(ConfigError, match="strategy 'dwa' has no option 'T'"):
        build("dwa", T=2.0)


@pytest.mark.parametrize("group_type", [1, 2])
def test_gradvac_groups_follow_the_model(group_type):
    _, step = reference_step()
    strategy = build("gradvac", group_type=group_type, seed=0)
    strategy.backward(step)
    expected_groups = 2 if group_type == 1 else 4  # two conv modules, each with weight and bias
    assert tuple(strategy.state.phi_hat.shape) == (expected_groups, 3, 3)



@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_conforms(name):
    """12 steps (6 epochs: past DWA's, GradNorm's and STCH's warm-ups) equal 6 + a resume from a snapshot + 6."""
    check_strategy(name, REQUIRED.get(name))


@pytest.mark.parametrize("name", REP_MODE)
def test_every_gradient_method_conforms_on_the_representation(name):
    check_strategy(name, {"grad_mode": "rep"})


def test_db_mtl_rejects_negative_losses_like_the_other_log_methods():
    """DB-MTL takes log(L + ε) itself: under a log loss transform (negative losses) it diverged silently."""
    model, strategy, _ = setup("db-mtl", seed=0)
    x, y = toy_batch(TASKS, seed=0)
    step = make_step(model, x, y, TASKS, transform="log")
    first = next(iter(TASKS))
    step.losses = {**step.losses, first: torch.log(step.losses[first].exp() * 0.1)}  # a loss below 1, logged
    assert float(step.loss_vector().min()) < 0
    with pytest.raises(ConfigError, match="db-mtl needs non-negative task losses, but task '.*' has loss -"):
        strategy.backward(step)
