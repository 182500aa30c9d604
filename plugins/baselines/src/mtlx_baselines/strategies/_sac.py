"""A small soft actor-critic (Haarnoja et al., 2018) whose actions are task weights: IGBv2's agent.

Everything random (initial weights, the policy's noise, the replay samples) is drawn from one
``torch.Generator`` that the owner passes in, and :meth:`SAC.state_dict` holds the whole agent (networks,
target critic, optimisers, temperature, replay buffer), so a resumed run takes exactly the uninterrupted
run's actions. The agent runs on the CPU in float32; its inputs are T numbers per step.

Choices of the IGBv2 code (IGB4MTL ``methods/SAC_Agent.py``, itself after XinJingHao/SAC-Continuous-Pytorch),
kept so that runs compare with the paper's:

- the action is ``T softmax(u)``, ``u ~ N(μ(s), σ(s))``, ``log σ`` clamped to [-20, 2]; its log-probability is
  that of u minus ``Σ 2(log 2 − u − softplus(−2u))`` (the tanh correction, which the code keeps for the
  softmax squash);
- actor and both critics: two hidden layers with ReLU (the actor's trunk ends with a ReLU too);
- twin critics with a Polyak-averaged target (τ), the entropy temperature learnt towards ``−T``,
  Adam for all three, no terminal states.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..rng import drawing_from
from ._state import clone_state

__all__ = ["SAC", "ReplayBuffer", "SoftmaxActor", "TwinCritic"]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def _mlp(sizes: list[int], last: type[nn.Module]) -> nn.Sequential:
    """Linear layers with ReLU between them and ``last`` after the final one."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.Linear(n_in, n_out), nn.ReLU() if i < len(sizes) - 2 else last()]
    return nn.Sequential(*layers)


class SoftmaxActor(nn.Module):
    """Gaussian policy squashed by ``T softmax``: actions are positive weights summing to T."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.trunk = _mlp([dim, hidden, hidden], nn.ReLU)
        self.mean = nn.Linear(hidden, dim)
        self.log_std = nn.Linear(hidden, dim)

    def forward(self, state: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(action, log-probability)`` of one sample per state row; the noise comes from ``generator``."""
        h = self.trunk(state)
        mean = self.mean(h)
        std = self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        u = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        action = mean.shape[-1] * torch.softmax(u, dim=-1)
        log_prob = torch.distributions.Normal(mean, std).log_prob(u).sum(-1, keepdim=True)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1, keepdim=True)
        return action, log_prob


class TwinCritic(nn.Module):
    """Two Q networks on ``[state, action]``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.q1 = _mlp([2 * dim, hidden, hidden, 1], nn.Identity)
        self.q2 = _mlp([2 * dim, hidden, hidden, 1], nn.Identity)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sa = torch.cat([state, action], dim=-1)
        return self.q1(sa), self.q2(sa)


class ReplayBuffer:
    """A ring buffer of transitions ``(s, a, r, s')``, sampled uniformly with replacement."""

    FIELDS = ("states", "actions", "rewards", "next_states")

    def __init__(self, dim: int, capacity: int):
        self.capacity = capacity
        self.states = torch.zeros(capacity, dim)
        self.actions = torch.zeros(capacity, dim)
        self.rewards = torch.zeros(capacity, 1)
        self.next_states = torch.zeros(capacity, dim)
        self.position = 0  # where the next transition goes
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, state: torch.Tensor, action: torch.Tensor, reward: float, next_state: torch.Tensor) -> None:
        i = self.position
        self.states[i], self.actions[i], self.rewards[i], self.next_states[i] = state, action, reward, next_state
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        index = torch.randint(0, self.size, (n,), generator=generator)
        return tuple(getattr(self, f)[index] for f in self.FIELDS)

    def state_dict(self) -> dict[str, Any]:
        """The filled rows only (a checkpoint early in training stays small)."""
        return {"position": self.position, "size": self.size,
                **{f: getattr(self, f)[: self.size].clone() for f in self.FIELDS}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.position, self.size = int(state["position"]), int(state["size"])
        for f in self.FIELDS:
            rows = getattr(self, f)
            rows.zero_()
            rows[: self.size] = state[f]


class SAC:
    """Soft actor-critic on T-dimensional states and actions (IGBv2: losses in, task weights out)."""

    def __init__(self, dim: int, *, hidden: int, lr: float, gamma: float, tau: float, alpha: float,
                 generator: torch.Generator):
        self.gamma, self.tau, self.generator = gamma, tau, generator
        with drawing_from(generator):  # the initial weights come from the owner's stream
            self.actor = SoftmaxActor(dim, hidden)
            self.critic = TwinCritic(dim, hidden)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(alpha), requires_grad=True)
        self.target_entropy = -float(dim)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=lr)

    def act(self, state: torch.Tensor) -> torch.Tensor:
        """A sampled (not the mean) action for one state, as IGBv2 trains with."""
        with torch.no_grad():
            return self.actor(state, self.generator)[0]

    def update(self, batch: tuple[torch.Tensor, ...]) -> None:
        """One SAC step on ``(s, a, r, s')``: critics, then actor (critics fixed), then temperature, then target."""
        state, action, reward, next_state = batch
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_log_prob = self.actor(next_state, self.generator)
            target_q = torch.min(*self.target(next_state, next_action))
            y = reward + self.gamma * (target_q - alpha * next_log_prob)
        q1, q2 = self.critic(state, action)
        self._step(self.critic_optimizer, F.mse_loss(q1, y) + F.mse_loss(q2, y))

        new_action, log_prob = self.actor(state, self.generator)
        self.critic.requires_grad_(False)
        actor_loss = (alpha * log_prob - torch.min(*self.critic(state, new_action))).mean()
        self._step(self.actor_optimizer, actor_loss)
        self.critic.requires_grad_(True)

        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self._step(self.alpha_optimizer, alpha_loss)

        with torch.no_grad():
            for p, t in zip(self.critic.parameters(), self.target.parameters(), strict=True):
                t.mul_(1 - self.tau).add_(p, alpha=self.tau)

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return clone_state({
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(), "target": self.target.state_dict(),
            "log_alpha": self.log_alpha.detach(), "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(), "alpha_optimizer": self.alpha_optimizer.state_dict(),
        })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = clone_state(state)
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("actor_optimizer", "critic_optimizer", "alpha_optimizer"):
            getattr(self, name).load_state_dict(state[name])
