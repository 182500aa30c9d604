"""MTAdam: per-task Adam moments, each layer's task gradients balanced to the anchor (first) task's.

The update on given gradients is checked at float64 against a naive transcription of the paper's algorithm
(Malkiel & Wolf, Algorithm 1, with the original code's first-step norms and anchor fallback) written here,
layer by layer and term by term, and against values worked out by hand for two steps; then the strategy
owning the optimiser step through the engine (heads as plain Adam on their own gradient, the scheduler's
learning rate followed), ``mtlx.MTL`` equal to the engine, conformance with exact resume, a digits run and
its resume, and the one-line refusals of what cannot hold.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import StackDataset

from mtlx import MTL, ConfigError
from mtlx.cli import main
from mtlx.data import EpochLoader
from mtlx.engine import Engine, State
from mtlx.engine.step import forward, task_losses
from mtlx.handlers import LRSchedulerHandler
from mtlx_baselines.strategies.mtadam import MTAdam, adam_direction, balance
from mtlx_testing import ToyModel, check_strategy, toy_batch, toy_tasks

TASKS = toy_tasks(2)
BETAS, EPS, BETA3 = (0.9, 0.999), 1e-8, 0.9
TINY = ["-o", "dataset.train_size=256", "-o", "dataset.val_size=64", "-o", "dataset.test_size=64"]


class NaiveMTAdam:
    """The paper's loop: for each term i and layer l, n_il (the first step: ‖g_il‖), g̃_il = n_al/n_il · g_il
    (a: the first term whose n exceeds 1e-10), m_i, v_i; Δθ = -lr Σ_i m̂_i / (max_i √v̂_i + ε)."""

    def __init__(self, terms: int, layers: list[int]):
        self.t = 0
        self.n = [[None] * len(layers) for _ in range(terms)]
        self.m = [[torch.zeros(size, dtype=torch.float64) for size in layers] for _ in range(terms)]
        self.v = [[torch.zeros(size, dtype=torch.float64) for size in layers] for _ in range(terms)]

    def step(self, grads: list[list[torch.Tensor]], lr: float, beta3: float = BETA3) -> list[torch.Tensor]:
        """``grads[i][l]``: term i's gradient of layer l; returns Δθ per layer."""
        self.t += 1
        terms, layers = len(grads), len(grads[0])
        for i in range(terms):
            for layer in range(layers):
                norm = math.sqrt(sum(float(x) ** 2 for x in grads[i][layer]))
                prev = self.n[i][layer]
                self.n[i][layer] = norm if prev is None else beta3 * prev + (1 - beta3) * norm
        updates = []
        for layer in range(layers):
            anchor = next((self.n[i][layer] for i in range(terms) if self.n[i][layer] > 1e-10), None)
            numerator = torch.zeros_like(grads[0][layer])
            biggest = torch.zeros_like(grads[0][layer])
            for i in range(terms):
                g = grads[i][layer]
                if self.n[i][layer] > 1e-10:
                    g = g * (anchor / self.n[i][layer])
                self.m[i][layer] = BETAS[0] * self.m[i][layer] + (1 - BETAS[0]) * g
                self.v[i][layer] = BETAS[1] * self.v[i][layer] + (1 - BETAS[1]) * g * g
                numerator += self.m[i][layer] / (1 - BETAS[0] ** self.t)
                biggest = torch.maximum(biggest, self.v[i][layer] / (1 - BETAS[1] ** self.t))
            updates.append(-lr * numerator / (biggest.sqrt() + EPS))
        return updates


class Ours:
    """The module's functions, with the state the strategy keeps."""

    def __init__(self, terms: int, layers: list[int]):
        self.layer_of = torch.repeat_interleave(torch.arange(len(layers)), torch.tensor(layers))
        self.norms = None
        self.m = torch.zeros(terms, sum(layers), dtype=torch.float64)
        self.v = torch.zeros_like(self.m)
        self.t = 0

    def step(self, G: torch.Tensor, lr: float) -> torch.Tensor:
        self.t += 1
        balanced, self.norms = balance(G, self.layer_of, self.norms, BETA3)
        return -lr * adam_direction(balanced, self.m, self.v, self.t, BETAS, EPS)


LAYERS = [3, 1, 4, 2]


def gradients(seed: int, terms: int = 3) -> torch.Tensor:
    """Per-term gradients of very different sizes per layer; task 0 reaches no element of layer 2 and no
    task reaches layer 3 (the anchor falls back to task 1 there; a dead layer stays still)."""
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(terms, sum(LAYERS), generator=g, dtype=torch.float64)
    G *= torch.tensor([1.0, 30.0, 0.01][:terms], dtype=torch.float64)[:, None]
    G[0, 4:8] = 0.0
    G[:, 8:] = 0.0
    return G


def per_layer(G: torch.Tensor) -> list[list[torch.Tensor]]:
    return [list(row.split(LAYERS)) for row in G]


def test_the_update_matches_the_naive_algorithm_over_steps():
    naive, ours = NaiveMTAdam(3, LAYERS), Ours(3, LAYERS)
    for step in range(6):
        G, lr = gradients(step), 0.1 / (1 + step)  # a learning rate that changes, as a scheduler's
        want = torch.cat(naive.step(per_layer(G), lr))
        got = ours.step(G, lr)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15, msg=f"step {step}")
    assert bool((got[8:] == 0).all()) and bool((got[:8] != 0).all())


def test_a_layer_task_zero_does_not_reach_is_balanced_to_the_next_task():
    """Layer 2: task 0's gradient is 0, so task 2's rescaled gradient has task 1's norm there."""
    G = gradients(0)
    balanced, norms = balance(G, Ours(3, LAYERS).layer_of, None, BETA3)
    layer2 = balanced[:, 4:8]
    torch.testing.assert_close(layer2[2].norm(), layer2[1].norm(), rtol=1e-12, atol=0)
    torch.testing.assert_close(layer2[1], G[1, 4:8], rtol=0, atol=0)
    assert float(norms[0, 2]) == 0.0


def test_two_steps_by_hand():
    """One layer of two coordinates, two tasks, lr 0.1.

    Step 1: g0 = (3, 4) (norm 5), g1 = (0.6, 0.8) (norm 1): n = (5, 1), g̃1 = 5·g1 = (3, 4) = g0; m̂_i = g̃_i,
    v̂_i = g̃_i²: Δθ = -0.1·(6, 8)/((3, 4) + ε) = -(0.2, 0.2).
    Step 2: g0 = (0, 5), g1 = (1, 0): n0 = 0.9·5 + 0.1·5 = 5, n1 = 0.9·1 + 0.1·1 = 1, g̃1 = (5, 0);
    m0 = 0.9·(0.3, 0.4) + 0.1·(0, 5) = (0.27, 0.86), m1 = 0.9·(0.3, 0.4) + 0.1·(5, 0) = (0.77, 0.36);
    v0 = 0.999·0.001·(9, 16) + 0.001·(0, 25), v1 = 0.999·0.001·(9, 16) + 0.001·(25, 0); the bias corrections
    1 - 0.9² = 0.19 and 1 - 0.999² = 0.001999.
    """
    ours = Ours(2, [2])
    first = ours.step(torch.tensor([[3.0, 4.0], [0.6, 0.8]], dtype=torch.float64), 0.1)
    torch.testing.assert_close(first, torch.tensor([-0.6 / (3 + EPS) * 1.0, -0.8 / (4 + EPS)], dtype=torch.float64),
                               rtol=1e-14, atol=0)
    assert abs(float(first[0]) + 0.2) < 1e-9 and abs(float(first[1]) + 0.2) < 1e-9
    second = ours.step(torch.tensor([[0.0, 5.0], [1.0, 0.0]], dtype=torch.float64), 0.1)
    v0 = [0.999 * 0.009 + 0.0, 0.999 * 0.016 + 0.025]
    v1 = [0.999 * 0.009 + 0.025, 0.999 * 0.016 + 0.0]
    denominator = [math.sqrt(max(a, b) / 0.001999) + EPS for a, b in zip(v0, v1, strict=True)]
    want = [-0.1 * (0.27 + 0.77) / 0.19 / denominator[0], -0.1 * (0.86 + 0.36) / 0.19 / denominator[1]]
    torch.testing.assert_close(second, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=0)
    assert abs(float(second[0]) + 0.132740) < 1e-5 and abs(float(second[1]) + 0.141811) < 1e-5


# -- the strategy owning the optimiser step ---------------------------------------------------------------


def _loader(batches: int, seed: int = 0) -> EpochLoader:
    x, targets = toy_batch(TASKS, batch_size=2 * batches, seed=seed)
    return EpochLoader(StackDataset(x, StackDataset(**targets)), batch_size=2, seed=0)


def _strategy() -> MTAdam:
    return MTAdam(MTAdam.Config(), tasks=list(TASKS))


def _engine(model, loader, optimizer=None, **options) -> Engine:
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=0.01)
    state = State(max_epochs=options.pop("max_epochs", 1), max_steps=options.pop("max_steps", None))
    return Engine(model=model, strategy=_strategy(), optimizer=optimizer, tasks=TASKS, train_loader=loader,
                  state=state, **options)


def _per_task(losses, params) -> list[list[torch.Tensor]]:
    """Each task's gradient of ``params`` by autograd from its own loss, float64, 0 where it does not reach."""
    grads = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) for loss in losses]
    return [[(g if g is not None else torch.zeros_like(p)).double().reshape(-1) for g, p in zip(row, params, strict=True)]
            for row in grads]


def test_the_engine_steps_every_layer_by_mtadam_following_the_scheduler():
    """Two epochs of two steps, StepLR halving lr after the first, weight decay: every parameter, heads
    included, moves as the naive algorithm over all layers on autograd's per-task gradients (a head gets
    only its own task's; the others' are 0 there), though the strategy steps heads by one moment pair."""
    torch.manual_seed(0)
    model, reference = ToyModel(TASKS), ToyModel(TASKS)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    engine = _engine(model, _loader(2), optimizer, max_epochs=2, scheduler=scheduler)
    engine.attach(LRSchedulerHandler())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "lr_scheduler.step() before optimizer.step()" included
        engine.run()
    assert not optimizer.state  # the optimiser kept no moments: the strategy's state has them

    params = list(reference.parameters())
    naive = NaiveMTAdam(len(TASKS), [p.numel() for p in params])
    loader = _loader(2)
    batches = [batch for _ in range(2) for batch in loader]  # the engine's two epochs, each shuffled
    for (x, targets), lr in zip(batches, [0.01, 0.01, 0.005, 0.005], strict=True):
        losses = task_losses(forward(reference, x)[0], targets, TASKS)
        updates = naive.step(_per_task(losses.values(), params), lr)
        with torch.no_grad():
            for p, d in zip(params, updates, strict=True):
                p.mul_(1 - lr * 0.1).add_(d.view_as(p).float())
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_mtl_step_with_the_optimiser_equals_the_engines_step():
    torch.manual_seed(0)
    model, twin = ToyModel(TASKS), ToyModel(TASKS)
    twin.load_state_dict(model.state_dict())
    _engine(model, _loader(3), max_steps=3).run()
    mtl = MTL("mtadam", tasks=list(TASKS), shared=twin.encoder, heads=twin.heads)
    optimizer = torch.optim.Adam(twin.parameters(), lr=0.01)
    for x, targets in _loader(3):
        preds, z = forward(twin, x)
        optimizer.zero_grad()
        mtl.backward(task_losses(preds, targets, TASKS), features=z)
        mtl.step(optimizer)
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)
    state = mtl.state_dict()["strategy"]["aggregator"]
    assert state["step"] == 3 and tuple(state["norms"].shape) == (2, 4)  # 2 tasks x 2 conv layers (weight, bias)


def test_conformance_with_exact_resume():
    check_strategy("mtadam")


# -- what cannot hold, refused in one line --------------------------------------------------------------


@pytest.mark.parametrize(("options", "says"), [
    ({"optimizer": "sgd"}, "takes the optimiser step itself in place of Adam or AdamW, not SGD: use Adam or AdamW"),
    ({"precision": "fp16"}, "fp16 loss scaling (GradScaler) cannot unscale or skip"),
    ({"max_grad_norm": 1.0}, "unset train.max_grad_norm"),
])
def test_the_engine_refuses_what_the_owned_step_cannot_honour(options, says):
    model = ToyModel(TASKS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1) if options.pop("optimizer", None) else None
    with pytest.raises(ConfigError, match=r"^strategy MTAdam .*") as error:
        _engine(model, _loader(2), optimizer, **options)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_mtl_refuses_a_missing_or_doubled_optimiser_step():
    model = ToyModel(TASKS)
    mtl = MTL("mtadam", tasks=list(TASKS), shared=model.encoder, heads=model.heads)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, targets = toy_batch(TASKS)
    with pytest.raises(ConfigError, match=r"^mtlx.MTL.backward: strategy 'mtadam' takes the optimiser step itself, "
                                          r"which fp16 loss scaling"):
        mtl.backward(task_losses(forward(model, x)[0], targets, TASKS), loss_scale=1024.0)
    mtl.backward(task_losses(forward(model, x)[0], targets, TASKS))
    with pytest.raises(ConfigError, match=r"call mtl.step\(optimizer\) in place of optimizer.step\(\)$"):
        mtl.step()
    optimizer.step()  # the user's loop stepped the optimiser as well
    with pytest.raises(ConfigError, match="but the optimiser has stepped too"):
        mtl.step(optimizer)
    with pytest.raises(ConfigError, match=r"^mtlx.MTL.step: strategy 'ew' does not take the optimiser step"):
        MTL("ew", tasks=list(TASKS), shared=model.encoder, heads=model.heads).step(optimizer)


# -- through mtlx run ------------------------------------------------------------------------------------


def _run(*extra):
    args = ["run", "--strategy", "mtadam", "--dataset", "digits", "--device", "cpu", "--seed", "0", "--quiet",
            "--threads", "1", *TINY, *extra]
    return CliRunner().invoke(main, args)


def test_digits_run_and_its_resume(tmp_path):
    """5 steps in one go equal 2 steps + ``--resume`` to 5 (its moments in the checkpoint), with a step
    schedule changing lr every epoch of 4 steps."""
    common = ["--batch-size", "64", "-o", "train.scheduler=step", "-o", "train.step_size=1"]
    full = _run(*common, "--max-steps", "5", "--out", str(tmp_path / "full"))
    assert full.exit_code == 0, f"{full.output}\n{full.exception!r}"
    assert _run(*common, "--max-steps", "2", "--out", str(tmp_path / "part")).exit_code == 0
    resumed = CliRunner().invoke(main, ["run", "--resume", str(tmp_path / "part"), "--max-steps", "5", "--quiet"])
    assert resumed.exit_code == 0, f"{resumed.output}\n{resumed.exception!r}"
    results = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("full", "part")]
    assert results[0]["steps"] == results[1]["steps"] == 5
    assert results[0]["test"] == results[1]["test"]
    assert all(math.isfinite(v) for task in results[0]["test"].values() for v in task.values())


def test_one_epoch_on_digits(tmp_path):
    result = _run("--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["strategy"] == "mtadam"


def test_bf16_autocast_runs(tmp_path):
    """bf16 has no loss scale: the per-task gradients are fp32 as in fp32 runs (only fp16 is refused)."""
    result = _run("--precision", "bf16", "--max-steps", "2", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 2 and all(math.isfinite(v) for t in results["test"].values() for v in t.values())


@pytest.mark.parametrize(("option", "says"), [
    ("train.optimizer=sgd", "in place of Adam or AdamW, not SGD"),
    ("train.max_grad_norm=1.0", "unset train.max_grad_norm"),
    ("strategy.beta3=1.0", "beta3"),
])
def test_bad_input_is_refused_in_one_line_before_the_run_directory(tmp_path, option, says):
    out = tmp_path / "run"
    result = _run("--max-steps", "1", "-o", option, "--out", str(out))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and says in lines[0], result.output
    assert not out.exists()
