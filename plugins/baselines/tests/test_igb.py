"""IGBv1 and IGBv2 (Dai et al., UAI 2023) against their defining equations and a naive SAC written here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch.utils.data import StackDataset

from mtlx import MTL, ConfigError
from mtlx.checkpoint import load_checkpoint
from mtlx.cli import main
from mtlx.data import EpochLoader
from mtlx.engine import Engine, State
from mtlx.engine.step import forward, task_losses
from mtlx_baselines.strategies.igb import IGBv1, IGBv2
from mtlx_testing import ToyModel, check_strategy, toy_batch, toy_tasks

TASKS = ("a", "b", "c")
#: IGBv2 with its whole schedule inside a few epochs: base losses from epoch 0, the agent trained from epoch 1
#: every 2 steps (one update on 4 transitions while the buffer is nearly empty) and choosing the weights from epoch 1
FAST = {"base_epoch": 0, "start_epoch": 1, "update_after": 1, "update_every": 2, "batch_size": 8, "hidden": 8,
        "buffer_size": 16}


def losses_of(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def at(step, epoch: int, iteration: int, lr: float | None = None):
    step.epoch, step.iteration, step.learning_rate = epoch, iteration, lr
    return step


# -- IGBv1 ------------------------------------------------------------------------------------------


def test_igbv1_log_losses_until_the_base_epoch_ends_then_softmax_of_loss_over_base(step):
    igb = IGBv1(IGBv1.Config(base_epoch=1), tasks=TASKS)
    losses = losses_of(1.0, 2.0, 4.0)
    total, weights = igb.combine(losses, at(step, 0, 0))
    assert total.item() == pytest.approx(math.log(8.0))  # Σ log L with w = 1
    assert weights.tolist() == pytest.approx([1.0, 0.5, 0.25])  # effective weights on ∇L: 1 / L
    igb.combine(losses_of(2.0, 1.0, 4.0), at(step, 1, 2))  # the base epoch: B = (3, 2, 3)
    igb.combine(losses_of(4.0, 3.0, 2.0), at(step, 1, 3))
    losses = losses_of(1.5, 2.0, 3.0)  # L / B = (0.5, 1, 1)
    total, weights = igb.combine(losses, at(step, 2, 4))
    e, z = math.exp(0.5), math.exp(0.5) + 2 * math.e
    w = [3 * e / z, 3 * math.e / z, 3 * math.e / z]
    assert total.item() == pytest.approx(sum(wi * math.log(v) for wi, v in zip(w, (1.5, 2.0, 3.0))), rel=1e-12)
    (grad,) = torch.autograd.grad(total, losses)
    assert grad.tolist() == pytest.approx([w[0] / 1.5, w[1] / 2.0, w[2] / 3.0], rel=1e-12)
    assert weights.tolist() == pytest.approx(grad.tolist(), rel=1e-12)
    assert igb.base.value.tolist() == [3.0, 2.0, 3.0]


def test_igb_refuses_non_positive_losses_and_a_missing_base_epoch(step):
    igb = IGBv1(IGBv1.Config(), tasks=TASKS)
    with pytest.raises(ConfigError, match="igbv1 needs positive task losses, but task 'b' has loss -0.5 at step 0"):
        igb.combine(losses_of(1.0, -0.5, 2.0), at(step, 0, 0))
    with pytest.raises(ConfigError, match="igbv1 reached epoch 2 without base losses: no step of epoch 1"):
        igb.combine(losses_of(1.0, 2.0, 3.0), at(step, 2, 7))


# -- IGBv2 against a naive reference ----------------------------------------------------------------


def _linear(p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def naive_actor(p, s, eps):
    """The policy written out: μ, log σ from a 2-layer ReLU trunk, u = μ + σ ε, a = T softmax(u)."""
    h = torch.relu(_linear(p, "trunk.2", torch.relu(_linear(p, "trunk.0", s))))
    mean, log_std = _linear(p, "mean", h), _linear(p, "log_std", h).clamp(-20, 2)
    std = log_std.exp()
    u = mean + std * eps
    gauss = (-((u - mean) ** 2) / (2 * std**2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
    squash = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1, keepdim=True)
    return 3 * torch.softmax(u, -1), gauss - squash


def naive_q(p, prefix, s, a):
    x = torch.cat([s, a], -1)
    x = torch.relu(_linear(p, f"{prefix}.0", x))
    return _linear(p, f"{prefix}.4", torch.relu(_linear(p, f"{prefix}.2", x)))


def first_adam_step(params: dict[str, torch.Tensor], loss: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
    """Adam's first step is ``p − lr g / (|g| + 1e-8)`` (bias-corrected moments g and g²)."""
    grads = torch.autograd.grad(loss, list(params.values()))
    return {n: (v - lr * g / (g.abs() + 1e-8)).detach() for (n, v), g in zip(params.items(), grads)}


def leaves(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: v.detach().clone().requires_grad_() for n, v in module.named_parameters()}


def test_igbv2_states_actions_rewards_and_one_agent_update_match_a_naive_sac(step):
    igb = IGBv2(IGBv2.Config(**FAST, seed=5), tasks=TASKS)
    gen = torch.Generator()
    gen.set_state(igb.generator.get_state())  # the reference draws the same numbers in the order it needs them
    actor, critic = leaves(igb.agent.actor), leaves(igb.agent.critic)
    losses = [(2.0, 1.0, 4.0), (1.0, 2.0, 3.0), (0.5, 1.5, 3.5), (0.4, 1.0, 3.0)]
    lr = [0.1, 0.1, 0.05, 0.05]  # the reward is scaled by lr₀ / lr = 2 in epoch 1

    def run(k: int) -> torch.Tensor:
        leaf = losses_of(*losses[k])
        total, effective = igb.combine(leaf, at(step, k // 2, k, lr[k]))
        w = effective * leaf.detach()
        assert total.item() == pytest.approx(float((w * leaf.detach().log()).sum()), rel=1e-12)
        return w.float()

    # epoch 0: the base epoch, random weights T softmax(N(0, I)), no transition, no training
    for k in (0, 1):
        torch.testing.assert_close(run(k), 3 * torch.softmax(torch.randn(3, generator=gen), 0))
    assert len(igb.buffer) == 0
    base = torch.tensor([1.5, 1.5, 3.5], dtype=torch.float64)
    state = [torch.tensor(v, dtype=torch.float32) for v in losses]
    reward = 2 * float(((torch.tensor(losses[1]) - torch.tensor(losses[2])).double() / base).min())

    # step 2: transition (L1, w1, r, L2) stored, then one SAC update on 4 copies of it (the buffer holds one)
    w1 = igb.last.action.clone()
    w2 = run(2)
    assert len(igb.buffer) == 1
    torch.testing.assert_close(igb.buffer.states[0], state[1])
    torch.testing.assert_close(igb.buffer.actions[0], w1)
    assert float(igb.buffer.rewards[0]) == pytest.approx(reward, rel=1e-6)
    torch.testing.assert_close(igb.buffer.next_states[0], state[2])

    assert torch.randint(0, 1, (4,), generator=gen).tolist() == [0, 0, 0, 0]
    s, a, r, s2 = state[1].expand(4, 3), w1.expand(4, 3), torch.full((4, 1), reward), state[2].expand(4, 3)
    alpha, gamma, tau, sac_lr = 0.2, 0.99, 0.005, 3e-4
    with torch.no_grad():
        a2, logp2 = naive_actor(actor, s2, torch.randn(4, 3, generator=gen))
        target = torch.min(naive_q(critic, "q1", s2, a2), naive_q(critic, "q2", s2, a2))
        y = r + gamma * (target - alpha * logp2)
    critic_loss = ((naive_q(critic, "q1", s, a) - y) ** 2).mean() + ((naive_q(critic, "q2", s, a) - y) ** 2).mean()
    new_critic = first_adam_step(critic, critic_loss, sac_lr)
    a_new, logp = naive_actor(actor, s, torch.randn(4, 3, generator=gen))
    q_new = torch.min(naive_q(new_critic, "q1", s, a_new), naive_q(new_critic, "q2", s, a_new))
    new_actor = first_adam_step(actor, (alpha * logp - q_new).mean(), sac_lr)
    log_alpha = torch.tensor(math.log(alpha), requires_grad=True)
    alpha_loss = -(log_alpha * (logp.detach() - 3)).mean()
    new_log_alpha = first_adam_step({"a": log_alpha}, alpha_loss, sac_lr)["a"]
    new_target = {n: (1 - tau) * v.detach() + tau * new_critic[n] for n, v in critic.items()}

    for name, mine, ref in [("actor", igb.agent.actor, new_actor), ("critic", igb.agent.critic, new_critic),
                            ("target", igb.agent.target, new_target)]:
        for n, v in mine.named_parameters():
            torch.testing.assert_close(v.detach(), ref[n], rtol=1e-5, atol=1e-7, msg=f"{name} {n}")
    torch.testing.assert_close(igb.agent.log_alpha.detach(), new_log_alpha, rtol=1e-6, atol=1e-7)

    # the weights of step 2 are a sample of the updated policy at L2; step 3 stores (L2, w2, r, L3), no update
    with torch.no_grad():
        torch.testing.assert_close(w2, naive_actor(new_actor, state[2], torch.randn(3, generator=gen))[0])
        w3 = run(3)
        torch.testing.assert_close(w3, naive_actor(new_actor, state[3], torch.randn(3, generator=gen))[0])
    assert len(igb.buffer) == 2
    torch.testing.assert_close(igb.buffer.actions[1], w2)
    reward3 = 2 * float(((torch.tensor(losses[2]) - torch.tensor(losses[3])).double() / base).min())
    assert float(igb.buffer.rewards[1]) == pytest.approx(reward3, rel=1e-6)
    assert torch.equal(igb.generator.get_state(), gen.get_state())  # nothing else was drawn


# -- conformance, mtlx.MTL, CLI ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), [
    ("igbv1", {"base_epoch": 0}),
    ("igbv2", {**FAST, "batch_size": 4, "buffer_size": 3}),  # trained on every even step, the buffer wraps
])
def test_conforms_with_the_schedule_inside_the_check(name, options):
    """12 steps: the base epoch, the agent's updates and a full buffer all before and after the resume."""
    check_strategy(name, options)


def _loader(batches: int) -> EpochLoader:
    tasks = toy_tasks(2)
    x, targets = toy_batch(tasks, batch_size=2 * batches, seed=0)
    return EpochLoader(StackDataset(x, StackDataset(**targets)), batch_size=2, seed=0)


def test_mtl_takes_the_engines_steps():
    """Three epochs of two steps each in the engine and in mtlx.MTL with end_epoch: the same model and agent."""
    tasks = toy_tasks(2)
    options = {**FAST, "seed": 3}
    torch.manual_seed(0)
    model, twin = ToyModel(tasks), ToyModel(tasks)
    twin.load_state_dict(model.state_dict())
    mtl = MTL("igbv2", tasks=list(tasks), shared=twin.encoder, heads=twin.heads, **options)
    engine = Engine(model=model, strategy=IGBv2(IGBv2.Config(**options), tasks=list(tasks)),
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.1), tasks=tasks, train_loader=_loader(2),
                    state=State(max_epochs=3))
    engine.run()
    optimizer, loader = torch.optim.SGD(twin.parameters(), lr=0.1), _loader(2)
    for _ in range(3):
        for x, targets in loader:
            optimizer.zero_grad()
            preds, z = forward(twin, x)
            mtl.backward(task_losses(preds, targets, tasks), features=z)
            optimizer.step()
            mtl.step()
        mtl.end_epoch()
    for (n, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=n)
    for (n, p), q in zip(engine.strategy.agent.actor.named_parameters(), mtl.strategy.agent.actor.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=n)
    assert len(mtl.strategy.buffer) == 4 and mtl.strategy.base.value is not None


@pytest.mark.parametrize("name", ["igbv1", "igbv2"])
def test_a_digits_run(tmp_path, name):
    args = ["run", "-s", name, "-d", "digits", "--threads", "1", "-q", "-o", "dataset.train_size=256",
            "-o", "dataset.val_size=64", "-o", "dataset.test_size=64", "--epochs", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert json.loads((tmp_path / "results.json").read_text())["strategy"] == name


@pytest.mark.slow
def test_every_process_holds_the_same_agent_under_torchrun(tmp_path):
    """2 gloo processes on different halves of each batch: one reward, one buffer, one agent on both ranks."""
    options = [arg for k, v in FAST.items() for arg in ("-o", f"strategy.{k}={v}")]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "mtlx",
               "--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-q", "--epochs", "3", "-s", "igbv2",
               "--batch-size", "2", "--out", str(tmp_path), *options]
    result = subprocess.run(command, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = (rank["strategy"] for rank in load_checkpoint(tmp_path / "last.pt")["ranks"])
    assert one["buffer"]["size"] == 8  # a transition per step of epochs 1 and 2 (4 steps each)
    for part in ("actor", "critic", "target"):
        for name, value in one["agent"][part].items():
            assert torch.equal(value, two["agent"][part][name]), f"{part} {name}"
    assert torch.equal(one["buffer"]["rewards"], two["buffer"]["rewards"])
    assert torch.equal(one["generator"], two["generator"])
