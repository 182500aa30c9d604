"""Learning to Branch, LTB (Guo, Lee & Ulbricht, ICML 2020), in LibMTL's form.

Every task has a backbone copy (the backbone must be staged); stage 0 of
each copy reads the input. Stage i > 0 of task c's copy reads one parent
among the tasks' stage i-1 outputs, chosen by a categorical distribution
with logits ``alpha[i-1, c, :]``. In training the choice is a hard
Gumbel-softmax sample at temperature tau (one-hot forward, the soft
sample's gradient into alpha), so the branching tree is learned with the
weights. LibMTL's schedule, when ``tau`` is not given: during warm-up
(``epoch < epochs / 100``) every child sums all its parents, then
``tau = epochs / 20 / sqrt(epoch + 1)``. The epoch reaches the model through
:meth:`LearningToBranch.set_epoch`: ``mtlx run`` calls it at every epoch start
(:class:`BranchingSchedule`, attached by this plugin); a training loop of
one's own calls it, or stays in warm-up (epoch 0 of 1).

Evaluation uses the learned tree, each child taking its most likely parent
(LibMTL samples at evaluation too), or the warm-up sum while training is
in warm-up. Every copy's stages but the last feed every task through the
branching, so they and alpha are shared parameters; the last stage of
task t's copy and its head are t's own. No single Z is shared by the heads.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from mtlx.engine import Engine, Handler
from mtlx.interfaces import BackboneFactory

from .base import Architecture
from .modules import require_stages, stage_parameters

__all__ = ["BranchingSchedule", "LearningToBranch"]


class LearningToBranch(Architecture):
    """LTB: a backbone copy per task, each stage's input a Gumbel-softmax choice among the previous stage's outputs."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o arch.KEY=VALUE``.

        Attributes:
            tau: fixed Gumbel-softmax temperature, no warm-up; None: LibMTL's schedule (warm-up while
                epoch < epochs/100, then tau = epochs / 20 / sqrt(epoch + 1))
        """

        tau: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0)))

    has_shared_representation = False

    def build_shared(
        self, config: Config, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.tau = config.tau
        self.epoch, self.epochs = 0, 1
        self.branches = nn.ModuleDict({t: make_backbone() for t in self.task_names})
        for branch in self.branches.values():
            depth = len(require_stages(branch, "ltb"))  # the copies are alike
        n = len(self.task_names)
        self.alpha = nn.Parameter(torch.ones(depth - 1, n, n))  # [child stage - 1, child task, parent task]
        return self.branches[self.task_names[0]].out_shape

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Where training is (0-based ``epoch`` of ``epochs``): sets the warm-up and temperature of the schedule."""
        self.epoch, self.epochs = epoch, epochs

    def temperature(self) -> float | None:
        """The Gumbel-softmax temperature now; None during warm-up (every child sums all its parents)."""
        if self.tau is not None:
            return self.tau
        if self.epoch < self.epochs / 100:
            return None
        return self.epochs / 20 / math.sqrt(self.epoch + 1)

    def branch_weights(self) -> torch.Tensor:
        """``[depth - 1, T, T]``: how much of each parent every child reads in this forward."""
        tau = self.temperature()
        if tau is None:
            return torch.full_like(self.alpha, 1.0)
        if self.training:
            return F.gumbel_softmax(self.alpha, tau=tau, hard=True, dim=-1)
        # one-hot of the most likely parent, by max and comparison: ops the FLOP counter knows as data movement
        parents = torch.arange(self.alpha.shape[-1], device=self.alpha.device)
        return (self.alpha.max(dim=-1).indices.unsqueeze(-1) == parents).to(self.alpha)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stages = [self.branches[t].stages() for t in self.task_names]
        feats = [task_stages[0](x) for task_stages in stages]
        for i, weights in enumerate(self.branch_weights(), start=1):
            children = torch.einsum("cp,pb...->cb...", weights, torch.stack(feats))  # [child, B, *Z]
            # a list, not a stack: a head's backward must not reach the other tasks' last stages
            feats = [task_stages[i](child) for task_stages, child in zip(stages, children, strict=True)]
        return {t: self.heads[t](f) for t, f in zip(self.task_names, feats, strict=True)}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [*stage_parameters(self.branches[task], -1), *self.heads[task].parameters()]

    def shared_parameters(self) -> list[nn.Parameter]:
        owned = {id(p) for t in self.task_names for p in self.task_parameters(t)}
        return [p for p in self.parameters() if id(p) not in owned]


class BranchingSchedule(Handler):
    """Tells an LTB model the epoch at the start of training (also after a resume) and of every epoch."""

    def started(self, engine: Engine) -> None:
        engine.model.set_epoch(engine.state.epoch, engine.state.max_epochs)

    def epoch_started(self, engine: Engine) -> None:
        engine.model.set_epoch(engine.state.epoch, engine.state.max_epochs)
