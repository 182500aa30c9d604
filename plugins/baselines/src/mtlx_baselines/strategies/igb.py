"""IGBv1 and IGBv2 (Dai, Fei, Lu, *Improvable Gap Balancing for Multi-Task Learning*, UAI 2023).

Both minimise the scale-invariant loss ``Σ_t w_t log L_t`` and give more weight to the tasks with the larger
*improvable gap*, which the paper's code (IGB4MTL) estimates by how far a task's loss still is from its
*base loss* ``B_t``: the mean training loss of epoch ``base_epoch`` (default 1, the second epoch, as
IGB4MTL's ``--base_epoch``). Until the base losses exist both train on the log losses as below.

- **IGBv1** (heuristic): ``w = T softmax(L / B)`` on the current batch's losses; ``w = 1`` until epoch
  ``base_epoch`` has ended.
- **IGBv2** (reinforcement learning): a soft actor-critic agent (:mod:`._sac`) whose state is the current
  losses ``L(k)`` and whose action is the weights ``w(k) = T softmax(u)``. Once the base losses exist, every
  step stores the transition ``(L(k−1), w(k−1), r(k), L(k))`` with reward
  ``r(k) = min_t (L_t(k−1) − L_t(k)) / B_t`` times ``lr₀ / lr`` (the smallest normalised loss decrease: the
  gap that closed least; the factor keeps rewards comparable while the learning rate decays). From epoch
  ``update_after`` on, every ``update_every`` steps the agent takes ``⌊update_every·κ/2⌋`` SAC updates on
  batches of ``⌊batch_size·κ/2⌋`` transitions, ``κ = 1 + fill`` with ``fill`` the buffer's fill fraction.
  Before epoch ``start_epoch`` the weights are random, ``T softmax(N(0, I))`` (RLW); afterwards a sample of
  the policy at ``L(k)``.

Choices taken from IGB4MTL where the paper leaves them open: the log losses; ``base_epoch = 1``; the reward's
``min`` and ``lr₀ / lr`` factor (here ``lr₀`` is the step's learning rate at the first step this strategy
sees, and the factor is 1 where either is unknown or 0, as in ``mtlx.MTL``); the schedule
(``start_epoch = 5``, ``update_after = 3``, ``update_every = 50``) and the agent (SAC, hidden layers of 128,
lr 3e-4, γ 0.99, τ 0.005, α₀ 0.2 learnt, batch 256, buffer of 10⁴). IGB4MTL's training call would fail on an
empty buffer (``update_after`` not after ``base_epoch``); here those updates are skipped.

Data parallelism: the losses used (the weights, the base losses, the agent's states and rewards) are the
means over processes (``StepContext.average_across_processes``: one all-reduce of T numbers per step), so
every process computes the same weights, and its agent, built from the same seed, takes the same updates.
The weights reported are the effective ones on ``∇L_t``: ``w_t / L_t``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from mtlx import ConfigError, LossWeighting, StepContext

from ..rng import Seeded
from ._positive import require_positive
from ._sac import SAC, ReplayBuffer
from ._state import clone_state

__all__ = ["IGBv1", "IGBv2"]


@attrs.define
class BaseLosses:
    """The mean loss of epoch ``base_epoch``, accumulated step by step (float64, CPU)."""

    total: torch.Tensor | None = None
    count: int = 0
    value: torch.Tensor | None = None


class _GapBalancing(LossWeighting):
    """What IGBv1 and IGBv2 share: the base losses and the log-loss objective."""

    name: str

    def __init__(self, config: Any, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.base = BaseLosses()

    @property
    def uses_epoch_end(self) -> bool:
        """The base losses and the schedule count epochs: a ``mtlx.MTL`` loop must call ``end_epoch``."""
        return True

    def observe(self, losses: torch.Tensor, step: StepContext) -> torch.Tensor:
        """The step's losses averaged over processes (float64, CPU); accumulated during epoch ``base_epoch``."""
        require_positive(losses, self.tasks, step, self.name)
        current = step.average_across_processes(losses.detach()).double().cpu()
        if step.epoch == self.config.base_epoch:
            self.base.total = current if self.base.total is None else self.base.total + current
            self.base.count += 1
        return current

    def base_losses(self, step: StepContext) -> torch.Tensor | None:
        """``B``, once epoch ``base_epoch`` has ended; None before."""
        if step.epoch <= self.config.base_epoch:
            return None
        if self.base.value is None:
            if self.base.total is None:
                raise ConfigError(
                    f"{self.name} reached epoch {step.epoch} without base losses: no step of epoch "
                    f"{self.config.base_epoch} (strategy.base_epoch) was seen (was the run resumed without the "
                    "strategy state?)"
                )
            self.base.value = self.base.total / self.base.count
        return self.base.value

    @staticmethod
    def objective(weights: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Σ w_t log L_t`` and its effective weights on ``∇L_t``, ``w_t / L_t``."""
        weights = weights.to(losses)
        return (weights * torch.log(losses)).sum(), weights / losses.detach()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["base"] = clone_state(attrs.asdict(self.base, recurse=False))
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.base = BaseLosses(**clone_state(state["base"]))


class IGBv1(_GapBalancing):
    """IGBv1 (Dai et al., UAI 2023): ``Σ w_t log L_t`` with ``w = T softmax(L / B)``, B the base-epoch losses."""

    name = "igbv1"

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            base_epoch: the epoch (0-based) whose mean training losses are the base losses B; weights are 1
                until it ends (IGB4MTL ``--base_epoch``, default 1)
        """

        base_epoch: int = attrs.field(default=1, validator=attrs.validators.ge(0))

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        current = self.observe(losses, step)
        base = self.base_losses(step)
        weights = torch.ones_like(current) if base is None else len(self.tasks) * torch.softmax(current / base, 0)
        return self.objective(weights, losses)


@attrs.define
class IGBv2State:
    """The last step's state and action (float32), which the next step's transition starts from, and lr₀."""

    state: torch.Tensor | None = None
    action: torch.Tensor | None = None
    initial_lr: float | None = None  # the learning rate of the first step seen


class IGBv2(Seeded, _GapBalancing):
    """IGBv2 (Dai et al., UAI 2023): ``Σ w_t log L_t`` with w chosen by a SAC agent rewarded by the closed gap."""

    name = "igbv2"

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE`` (defaults: IGB4MTL's).

        Attributes:
            base_epoch: the epoch (0-based) whose mean training losses are the base losses B that normalise
                the reward; transitions are stored once it has ended (IGB4MTL ``--base_epoch``)
            start_epoch: epochs of random weights T softmax(N(0, I)) before the agent chooses them
                (IGB4MTL ``start_epoch``)
            update_after: the first epoch in which the agent is trained (IGB4MTL ``update_after``)
            update_every: train the agent every this many steps (IGB4MTL ``update_every``)
            batch_size: SAC batch size when the buffer is full; half of it while it is nearly empty
            buffer_size: replay buffer capacity, in transitions (IGB4MTL ``--buffer_size``)
            lr: Adam learning rate of actor, critics and temperature (IGB4MTL ``--sac_lr``)
            hidden: width of the two hidden layers of actor and critics
            gamma: discount factor
            tau: Polyak rate of the target critics
            alpha: initial entropy temperature (then learnt towards the target entropy -T)
            seed: seed of the agent's initial weights and of every draw (default: drawn from the run's seed)
        """

        base_epoch: int = attrs.field(default=1, validator=attrs.validators.ge(0))
        start_epoch: int = attrs.field(default=5, validator=attrs.validators.ge(0))
        update_after: int = attrs.field(default=3, validator=attrs.validators.ge(0))
        update_every: int = attrs.field(default=50, validator=attrs.validators.ge(2))
        batch_size: int = attrs.field(default=256, validator=attrs.validators.ge(2))
        buffer_size: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
        lr: float = attrs.field(default=3e-4, validator=attrs.validators.gt(0))
        hidden: int = attrs.field(default=128, validator=attrs.validators.ge(1))
        gamma: float = attrs.field(default=0.99, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
        tau: float = attrs.field(default=0.005, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
        alpha: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))
        seed: int | None = None

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self._init_generator(config.seed)
        dim = len(self.tasks)
        self.agent = SAC(dim, hidden=config.hidden, lr=config.lr, gamma=config.gamma, tau=config.tau,
                         alpha=config.alpha, generator=self.generator)
        self.buffer = ReplayBuffer(dim, config.buffer_size)
        self.last = IGBv2State()

    def reward(self, before: torch.Tensor, after: torch.Tensor, base: torch.Tensor, step: StepContext) -> float:
        """``min_t (L_t(k−1) − L_t(k)) / B_t``, times ``lr₀ / lr``."""
        lr, initial = step.learning_rate, self.last.initial_lr
        scale = initial / lr if lr and initial else 1.0
        return float(((before - after) / base).min()) * scale

    def train_agent(self) -> None:
        """``⌊update_every·κ/2⌋`` SAC updates on ``⌊batch_size·κ/2⌋`` transitions, ``κ = 1 + fill``."""
        if not len(self.buffer):
            return
        kappa = 1 + len(self.buffer) / self.buffer.capacity
        batch = int(self.config.batch_size * kappa / 2)
        with torch.enable_grad(), torch.autocast("cpu", enabled=False):
            for _ in range(int(self.config.update_every * kappa / 2)):
                self.agent.update(self.buffer.sample(batch, self.generator))

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        current = self.observe(losses, step)
        base = self.base_losses(step)
        if self.last.initial_lr is None:
            self.last.initial_lr = step.learning_rate
        state = current.float()
        if base is not None and self.last.state is not None:
            reward = self.reward(self.last.state.double(), current, base, step)
            self.buffer.add(self.last.state, self.last.action, reward, state)
        config = self.config
        if step.epoch >= config.update_after and step.iteration % config.update_every == 0:
            self.train_agent()
        if step.epoch < config.start_epoch:
            weights = len(self.tasks) * torch.softmax(torch.randn(len(self.tasks), generator=self.generator), 0)
        else:
            with torch.autocast("cpu", enabled=False):
                weights = self.agent.act(state)
        self.last.state, self.last.action = state, weights
        return self.objective(weights, losses)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(agent=self.agent.state_dict(), buffer=self.buffer.state_dict(),
                     last=clone_state(attrs.asdict(self.last, recurse=False)))
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        self.last = IGBv2State(**clone_state(state["last"]))
