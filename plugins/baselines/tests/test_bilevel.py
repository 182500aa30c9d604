"""Auto-Lambda: a held-out batch and a virtual step per step (``MTOStrategy.heldout_split``).

The hyper-gradient of λ is checked at float64 against a naive transcription of the original algorithm
written here (a deep-copied model for θ', in-place perturbations for θ ± εd, ∂/∂λ by autograd) and against
its defining equation ``−α ∇θ L_t(θ) · ∇θ' L_val(θ')``; λ's update against torch's Adam; then conformance
(exact resume included), mtlx.MTL = the engine's step, digits runs resumed across held-out epochs, two
processes = one, and the one-line start-up refusals (no such split, a split too short for one batch).
"""

from __future__ import annotations

import copy

import attrs
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import StackDataset

from mtlx import MTL, ConfigError, LossWeighting, StepContext
from mtlx.checkpoint import load_checkpoint
from mtlx.cli import main
from mtlx.data import EpochLoader
from mtlx.engine import Engine, State
from mtlx.engine.step import forward, task_losses
from mtlx.virtual import losses_at
from mtlx_baselines.strategies import auto_lambda
from mtlx_testing import (
    ToyModel,
    assert_refused_at_start_up,
    assert_resume_is_exact,
    check_strategy,
    engine_states_on_one_and_two_processes,
    toy_batch,
    toy_tasks,
)

TASKS = toy_tasks(3)
NAMES = list(TASKS)


def f64(seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x, targets = toy_batch(TASKS, seed=seed)
    return x.double(), {t: y.double() if y.is_floating_point() else y for t, y in targets.items()}


def losses_of(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    """Each task's loss in the model's own precision (the engine's task_losses computes in fp32)."""
    x, targets = batch
    preds, _ = forward(model, x)
    return {t: TASKS[t].loss(preds[t], targets[t]) for t in TASKS}


def f64_step(model: nn.Module, train, held, alpha: float) -> StepContext:
    return StepContext(model=model, losses=losses_of(model, train), learning_rate=alpha,
                       recompute_losses=torch.no_grad()(lambda: losses_of(model, train)),
                       heldout_losses=lambda: losses_of(model, held))


def grads_or_zeros(loss: torch.Tensor, params: list[torch.Tensor], retain: bool = False) -> list[torch.Tensor]:
    """∇ loss w.r.t. each of ``params``, zero for those it does not read (the other tasks' heads)."""
    found = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, found, strict=True)]


def naive_hypergradient(model, train, held, lambdas: list[float], alpha: float, primary) -> list[float]:
    """The original's unrolled_backward, literally: θ' in a model copy, d, θ ± εd in place, ∂/∂λ by autograd."""
    lam = torch.tensor(lambdas, dtype=torch.float64, requires_grad=True)
    params = list(model.parameters())
    train_losses = losses_of(model, train)
    grads = torch.autograd.grad(sum(lam[i] * train_losses[t] for i, t in enumerate(NAMES)), params)
    virtual = copy.deepcopy(model)
    with torch.no_grad():
        for p_, p, g in zip(virtual.parameters(), params, grads, strict=True):
            p_.copy_(p - alpha * g)
    val = losses_of(virtual, held)
    d = grads_or_zeros(sum(val[t] for t in primary), list(virtual.parameters()))
    eps = 0.01 / sum(float((x * x).sum()) for x in d) ** 0.5
    perturbed = copy.deepcopy(model)
    sides = []
    for shift in (eps, -2 * eps):  # θ + εd, then θ − εd
        with torch.no_grad():
            for p, x in zip(perturbed.parameters(), d, strict=True):
                p += shift * x
        losses = losses_of(perturbed, train)
        (dl,) = torch.autograd.grad(sum(lam[i] * losses[t] for i, t in enumerate(NAMES)), lam)
        sides.append(dl)
    return (-alpha * (sides[0] - sides[1]) / (2 * eps)).tolist()


def exact_hypergradient(model, train, held, lambdas, alpha, primary) -> torch.Tensor:
    """−α ∇θ L_t(θ) · ∇θ' L_val(θ'): the derivative the finite difference approximates."""
    params = list(model.parameters())
    losses = losses_of(model, train)
    lam = torch.tensor(lambdas, dtype=torch.float64)
    grads = torch.autograd.grad(sum(lam[i] * losses[t] for i, t in enumerate(NAMES)), params, retain_graph=True)
    virtual = copy.deepcopy(model)
    with torch.no_grad():
        for p_, p, g in zip(virtual.parameters(), params, grads, strict=True):
            p_.copy_(p - alpha * g)
    val = losses_of(virtual, held)
    d = torch.cat([x.reshape(-1) for x in grads_or_zeros(sum(val[t] for t in primary), list(virtual.parameters()))])
    per_task = [torch.cat([g.reshape(-1) for g in grads_or_zeros(losses[t], params, retain=True)]) for t in NAMES]
    return torch.stack([-alpha * (g @ d) for g in per_task])


def model64(seed: int = 0) -> ToyModel:
    torch.manual_seed(seed)
    return ToyModel(TASKS).double()


@pytest.mark.parametrize("primary", [NAMES, ["seg0"], ["reg1", "seg2"]])
@pytest.mark.parametrize("seed", range(2))
def test_the_hypergradient_is_the_originals_finite_difference(seed, primary):
    model, train, held = model64(seed), f64(seed), f64(100 + seed)
    lambdas, alpha = [0.1, 0.3, 0.7], 0.5
    step = f64_step(model, train, held, alpha)
    got = auto_lambda.hypergradient(step, torch.tensor(lambdas, dtype=torch.float64), alpha, primary)
    want = naive_hypergradient(model, train, held, lambdas, alpha, primary)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    exact = exact_hypergradient(model, train, held, lambdas, alpha, primary)
    torch.testing.assert_close(got, exact, rtol=1e-3, atol=1e-7)  # central differences: O(ε²) from the derivative
    assert float(exact.abs().min()) > 1e-5  # a test that could fail: the hyper-gradient is not ~0


def test_losses_at_leaves_the_model_its_buffers_and_the_steps_graph_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    x = torch.randn(8, 3)
    loss = model(x).square().mean()  # the step's own graph, built before the virtual forward
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shifted = {n: (p.detach() + 1.0).requires_grad_() for n, p in model.named_parameters()}
    out = losses_at(model, lambda: {"y": model(x).square().mean()}, shifted)
    twin = copy.deepcopy(model)
    twin.load_state_dict(before)
    with torch.no_grad():
        for p in twin.parameters():
            p += 1.0
    torch.testing.assert_close(out["y"], twin(x).square().mean())
    (grad,) = torch.autograd.grad(out["y"], [shifted["0.weight"]])  # differentiable w.r.t. the given tensors
    assert grad.abs().sum() > 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # BN statistics too
    loss.backward()  # nothing in place: the step's graph is still valid


def test_the_step_updates_lambda_by_adam_and_backpropagates_the_new_weights():
    model, alpha, lr = model64(3), 0.2, 0.05
    strategy = auto_lambda.AutoLambda(auto_lambda.AutoLambda.Config(lr=lr, init=0.1), tasks=NAMES)
    lam = torch.nn.Parameter(torch.full((3,), 0.1, dtype=torch.float64))
    adam = torch.optim.Adam([lam], lr=lr)
    sgd = torch.optim.SGD(model.parameters(), lr=alpha)
    for it in range(3):  # λ and its moments carry over steps
        train, held = f64(10 + it), f64(20 + it)
        twin = copy.deepcopy(model)
        lam.grad = torch.tensor(naive_hypergradient(twin, train, held, lam.tolist(), alpha, NAMES),
                                dtype=torch.float64)
        adam.step()
        sgd.zero_grad()
        result = strategy.backward(f64_step(model, train, held, alpha))
        torch.testing.assert_close(strategy.state.lambdas, lam.detach(), rtol=1e-9, atol=1e-12)
        assert list(result.weights.values()) == strategy.state.lambdas.tolist()
        losses = losses_of(twin, train)
        sum(lam.detach()[i] * losses[t] for i, t in enumerate(NAMES)).backward()
        for (n, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=n)
        sgd.step()
    assert not torch.allclose(lam.detach(), torch.full((3,), 0.1, dtype=torch.float64))


def test_under_a_loss_scale_the_update_is_the_unscaled_one_and_grad_is_scaled():
    """fp16 AMP: every pass is taken on scaled losses and unscaled in fp32; .grad is scaled as the GradScaler expects."""
    results = []
    for scale in (1.0, 1024.0):
        model = model64(5)
        strategy = auto_lambda.AutoLambda(auto_lambda.AutoLambda.Config(lr=0.05), tasks=NAMES)
        step = f64_step(model, f64(1), f64(2), 0.3)
        step.loss_scale = scale
        strategy.backward(step)
        results.append((strategy.state.lambdas, [p.grad / scale for p in model.parameters()]))
    (lam1, grads1), (lam2, grads2) = results
    torch.testing.assert_close(lam2, lam1, rtol=1e-12, atol=0)
    for g1, g2 in zip(grads1, grads2, strict=True):
        torch.testing.assert_close(g2, g1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("options", [{}, {"primary": "seg0,reg1", "virtual_lr": 0.05, "lr": 0.01}])
def test_conformance_with_exact_resume(options):
    check_strategy("auto-lambda", options)


def test_unknown_primary_tasks_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^strategy 'auto-lambda': primary names unknown task 'seg'"):
        auto_lambda.AutoLambda(auto_lambda.AutoLambda.Config(primary="seg"), tasks=NAMES)


# -- the engine and mtlx.MTL ------------------------------------------------------------------------------------


def loader(seed: int, batches: int = 3, shuffle_seed: int = 0) -> EpochLoader:
    x, targets = toy_batch(TASKS, batch_size=2 * batches, seed=seed)
    return EpochLoader(StackDataset(x, StackDataset(**targets)), batch_size=2, seed=shuffle_seed)


class HeldOutRecorder(LossWeighting):
    """EW that records the held-out batch's losses of every step (no name of it anywhere in the engine)."""

    heldout_split = "held"

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    def __init__(self, config, *, tasks):
        super().__init__(config, tasks=tasks)
        self.seen: list[list[float]] = []

    def combine(self, losses, step: StepContext):
        self.seen.append([float(v.detach()) for v in step.heldout_losses().values()])
        return losses.sum(), torch.ones(len(losses))


def _recording_engine(model, max_steps: int) -> Engine:
    strategy = HeldOutRecorder(HeldOutRecorder.Config(), tasks=NAMES)
    return Engine(model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
                  tasks=TASKS, train_loader=loader(0, batches=4), heldout_loader=loader(1, batches=2, shuffle_seed=1),
                  state=State(max_epochs=3, max_steps=max_steps))


def test_the_engine_draws_one_heldout_batch_per_step_cycling_and_resumes_its_position():
    """2 held-out batches, 5 steps: passes 0, 1 and the first batch of 2, each in its own shuffle; a run
    stopped after 2 steps (the end of a pass) and restored from state_dict continues with the same batches."""
    torch.manual_seed(0)
    model = ToyModel(TASKS)
    engine = _recording_engine(model, 5)
    engine.run()
    reference, expected = loader(1, batches=2, shuffle_seed=1), []
    for _ in range(3):
        with torch.no_grad():
            expected += [[float(v) for v in task_losses(forward(model, x)[0], y, TASKS).values()] for x, y in reference]
    assert engine.strategy.seen == expected[:5]
    assert expected[0] != expected[2]  # the second pass is shuffled anew: a test that could fail
    first = _recording_engine(model, 2)
    first.run()
    state = copy.deepcopy(first.state_dict())
    resumed = _recording_engine(model, 5)
    resumed.load_state_dict(state)
    resumed.run()
    assert first.strategy.seen + resumed.strategy.seen == expected[:5]


@pytest.mark.parametrize("name", ["auto-lambda", "moml", "forum"])
def test_mtl_backward_with_heldout_losses_gives_the_engines_gradients(name):
    torch.manual_seed(0)
    model = ToyModel(TASKS)
    twin = copy.deepcopy(model)
    mtl = MTL(name, tasks=NAMES, shared=twin.encoder, heads=twin.heads, lr=0.05)
    strategy = type(mtl.strategy)(mtl.strategy.config, tasks=NAMES)
    engine = Engine(model=model, strategy=strategy, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    tasks=TASKS, train_loader=loader(0), heldout_loader=loader(1, shuffle_seed=1),
                    state=State(max_epochs=1, max_steps=1))
    engine.run()
    (x, y), (hx, hy) = next(iter(loader(0))), next(iter(loader(1, shuffle_seed=1)))
    preds, z = forward(twin, x)
    train = {"train_losses": lambda: task_losses(forward(twin, x)[0], y, TASKS)} if name == "forum" else {}
    result = mtl.backward(task_losses(preds, y, TASKS), features=z, learning_rate=0.1,
                          recompute_losses=lambda: task_losses(forward(twin, x)[0], y, TASKS),
                          heldout_losses=lambda: task_losses(forward(twin, hx)[0], hy, TASKS), **train)
    assert result.weights == engine.state.weights
    for (n, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=n)


@pytest.mark.parametrize(("call", "says"), [
    ({}, r"^mtlx.MTL.backward: strategy 'auto-lambda' learns from a held-out batch each step: pass heldout_losses="),
    ({"heldout_losses": dict}, (r"^strategy 'auto-lambda' needs the step's learning_rate: pass learning_rate= "
                                r"\(your optimiser's current learning rate\) to MTL.backward$")),
])
def test_mtl_says_what_auto_lambda_needs(call, says):
    model = ToyModel(TASKS)
    mtl = MTL("auto-lambda", tasks=NAMES, shared=model.encoder, heads=model.heads)
    x, y = toy_batch(TASKS)
    with pytest.raises(ConfigError, match=says) as error:
        mtl.backward(task_losses(forward(model, x)[0], y, TASKS), **call)
    assert "\n" not in str(error.value)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("name", "call", "says"), [
    ("forum", {"heldout_losses": dict},
     (r"^mtlx.MTL.backward: strategy 'forum' re-runs your training batch at other parameters: pass train_losses= "
      r"\(a forward of the same batch through shared and heads, with graph: lambda: \{task: loss\}\) to MTL.backward$")),
    ("forum", {"heldout_losses": dict, "train_losses": 1.0},
     r"^mtlx.MTL.backward: train_losses must be a function returning \{task: loss\}, got float$"),
    ("moml", {"heldout_losses": dict, "train_losses": dict},
     r"^mtlx.MTL.backward: strategy 'moml' does not re-run the training batch; drop train_losses=$"),
])
def test_mtl_refuses_a_missing_or_wrong_train_losses_in_one_line(name, call, says):
    model = ToyModel(TASKS)
    mtl = MTL(name, tasks=NAMES, shared=model.encoder, heads=model.heads)
    x, y = toy_batch(TASKS)
    with pytest.raises(ConfigError, match=says) as error:
        mtl.backward(task_losses(forward(model, x)[0], y, TASKS), **call)
    assert "\n" not in str(error.value)
    assert all(p.grad is None for p in model.parameters())


def test_mtl_refuses_parameter_lists_for_a_virtual_step_and_heldout_losses_elsewhere():
    model = ToyModel(TASKS)
    with pytest.raises(ConfigError, match=r"^mtlx.MTL: strategy 'auto-lambda' evaluates your losses at virtual "
                                          r"parameters, which needs modules: pass shared as the nn.Module"):
        MTL("auto-lambda", tasks=NAMES, shared=list(model.encoder.parameters()), heads=model.heads)
    mtl = MTL("ew", tasks=NAMES, shared=model.encoder, heads=model.heads)
    x, y = toy_batch(TASKS)
    with pytest.raises(ConfigError, match=r"strategy 'ew' takes no held-out batch; drop heldout_losses="):
        mtl.backward(task_losses(forward(model, x)[0], y, TASKS), heldout_losses=dict)


# -- mtlx run -----------------------------------------------------------------------------------------------------

TINY = ["-o", "dataset.test_size=32"]


#: the toy problem of the "2 processes = 1" tests, 2 epochs
TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-q", "--epochs", "2"]


def _args(*extra, name: str = "auto-lambda") -> list:
    return ["run", "--strategy", name, "--dataset", "digits", "--device", "cpu", "--batch-size", "16",
            "--seed", "0", "--quiet", "--threads", "1", *TINY, *extra]


def _run(*extra, name: str = "auto-lambda"):
    return CliRunner().invoke(main, _args(*extra, name=name))


@pytest.mark.parametrize("split", ["train", "val"])
def test_digits_run_and_resume_across_heldout_epochs(split, tmp_path):
    """64 training samples: 4 steps per epoch; the held-out loader (val: 2 batches) ends a pass at step 2, where
    the run is interrupted: 5 steps in one go equal 2 steps + ``--resume`` to 5."""
    options = ["-o", "dataset.train_size=64", "-o", "dataset.val_size=32", "-o", f"strategy.heldout_split={split}",
               "-o", "strategy.lr=0.01"]
    assert_resume_is_exact(_args(*options), tmp_path, steps=5, interrupt_at=2)
    lambdas = load_checkpoint(tmp_path / "full" / "last.pt")["engine"]["strategy"]["auto_lambda"]["lambdas"]
    assert len(set(lambdas.tolist())) == 3  # λ moved, each task its own way


def test_a_bf16_digits_run_trains_lambda(tmp_path):
    result = _run("-o", "dataset.train_size=32", "--precision", "bf16", "--max-steps", "2", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    lambdas = load_checkpoint(tmp_path / "r" / "last.pt")["engine"]["strategy"]["auto_lambda"]["lambdas"]
    assert bool(torch.isfinite(lambdas).all()) and len(set(lambdas.tolist())) == 3


@pytest.mark.parametrize(("options", "says"), [
    (["-o", "strategy.heldout_split=meta"],
     "draws held-out batches of split 'meta', but dataset 'digits' has only train, val, test"),
    (["-o", "strategy.heldout_split=val", "-o", "dataset.val_size=8", "-o", "train.drop_last=true"],
     "the held-out split 'val' of 'digits' has 8 samples: no batch of 16"),
])
@pytest.mark.parametrize("name", ["auto-lambda", "moml", "forum"])
def test_a_missing_or_too_short_heldout_split_is_refused_before_the_run_directory(name, options, says, tmp_path):
    out = tmp_path / "run"
    result = _run("-o", "dataset.train_size=64", *options, "--max-steps", "1", "--out", str(out), name=name)
    assert_refused_at_start_up(result, says, out)


@pytest.mark.slow
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    """Each process draws its own shard of the held-out batch; θ', d and the hyper-gradient are averaged."""
    one, two = engine_states_on_one_and_two_processes(
        [*TOY, "-s", "auto-lambda", "-o", "strategy.lr=0.05"], tmp_path)
    assert max(float((one["model"][k] - two["model"][k]).abs().max()) for k in one["model"]) < 1e-5
    lam_one, lam_two = one["strategy"]["auto_lambda"]["lambdas"], two["strategy"]["auto_lambda"]["lambdas"]
    # the finite difference of fp32 losses summed in another order: λ agrees to ~1e-4 of its change, not bitwise
    torch.testing.assert_close(lam_two, lam_one, rtol=1e-3, atol=0)
    assert float((lam_one - 0.1).abs().min()) > 1e-2  # λ moved far more than that
