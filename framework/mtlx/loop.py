"""Any installed strategy in your own training loop: ``mtlx.MTL``.

The engine is one way to train; most researchers already have a loop (plain
PyTorch, Lightning, their own). :class:`MTL` gives such a loop the same step
the engine takes: the user computes the shared features and the per-task
losses, ``mtl.backward(losses, features=z)`` populates ``.grad`` of the shared
and task-specific parameters exactly as ``mtlx run`` would, and the user's
optimiser steps::

    mtl = mtlx.MTL("rep-mtl", tasks=["seg", "depth"], shared=encoder, heads={"seg": seg_head, "depth": depth_head})
    optimizer = torch.optim.Adam([*encoder.parameters(), *heads.parameters(), *mtl.parameters()])
    for x, y in loader:
        z = encoder(x)
        losses = {"seg": seg_loss(seg_head(z), y["seg"]), "depth": depth_loss(depth_head(z), y["depth"])}
        optimizer.zero_grad()
        mtl.backward(losses, features=z)
        optimizer.step()
        mtl.step()                       # after the optimiser step (FAMO's update)
    mtl.end_epoch()                      # per-epoch strategies (DWA, GradNorm)

The strategy's cross-step state is in ``mtl.state_dict()`` for the user's checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from . import distributed
from .build import strategy_by_name
from .errors import ConfigError
from .gradients import METHODS
from .interfaces import EncoderHeads, MTOStrategy, Need, StepContext, StepResult

__all__ = ["MTL"]

Parameters = nn.Module | Iterable[nn.Parameter]


def _as_module(params: Parameters) -> nn.Module:
    """A module holding ``params`` (the module itself when one is given, so its structure stays visible)."""
    if isinstance(params, nn.Module):
        return params
    holder = nn.Module()
    holder.params = nn.ParameterList(list(params))
    return holder


class _UserModel(EncoderHeads):
    """The user's shared part and heads, seen through the MultiTaskModel interface strategies use (never run)."""

    def __init__(self, tasks: Sequence[str], shared: Parameters, heads: Mapping[str, Parameters]):
        super().__init__(dict.fromkeys(tasks))  # only the task names are read
        self.encoder = _as_module(shared)
        self.heads = nn.ModuleDict({t: _as_module(heads[t]) for t in tasks})


class MTL:
    """A registered strategy (``name``, e.g. ``"rep-mtl"``, ``"mgda"``) driving a user's training loop.

    Args:
        name: an installed strategy (``mtlx list strategies``).
        tasks: the task names, in the order losses are given.
        shared: the shared (encoder) parameters, or the module holding them.
        heads: ``{task: parameters or module}``: each task's own parameters.
        per_task_grads: ``auto``, ``loop`` or ``two-stage`` (``train.per_task_grads``).
        **options: the strategy's options (its ``Config`` fields), checked as ``-o strategy.<key>`` is.
    """

    def __init__(
        self,
        name: str,
        *,
        tasks: Sequence[str],
        shared: Parameters,
        heads: Mapping[str, Parameters],
        per_task_grads: str = "auto",
        **options: Any,
    ):
        self.tasks = tuple(tasks)
        missing = [t for t in self.tasks if t not in heads]
        if missing or set(heads) - set(self.tasks):
            raise ConfigError(f"mtlx.MTL: heads must have one entry per task {list(self.tasks)}; got {sorted(heads)}")
        if per_task_grads not in METHODS:
            raise ConfigError(f"mtlx.MTL: per_task_grads must be one of {', '.join(METHODS)}, got {per_task_grads!r}")
        self.strategy: MTOStrategy = strategy_by_name(name, options, self.tasks)
        self.model = _UserModel(self.tasks, shared, heads)
        self.per_task_grads = per_task_grads
        self.iteration = 0
        self.epoch = 0
        self._epoch_sums = dict.fromkeys(self.tasks, 0.0)
        self._epoch_steps = 0
        self._last: StepContext | None = None

    def parameters(self) -> list[nn.Parameter]:
        """The strategy's own learnable parameters (UW's log-variances): add them to your optimiser."""
        return list(self.strategy.extra_parameters())

    def backward(
        self,
        losses: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
        *,
        features: torch.Tensor | None = None,
        loss_scale: float = 1.0,
        recompute_losses: Callable[[], Mapping[str, torch.Tensor]] | None = None,
    ) -> StepResult:
        """Populate ``.grad`` of the shared, task and strategy parameters for this step (the engine's step).

        Args:
            losses: ``{task: scalar}`` or the T scalars in task order.
            features: the shared representation Z the heads read (needed by representation-level
                strategies such as rep-mtl and graddrop; lets the others use the two-stage gradients).
            loss_scale: the AMP loss scale (``float(scaler.scale(torch.ones(())))``: ``get_scale()`` does not
                initialise a fresh GradScaler, whose ``step`` then fails); ``.grad`` is then scaled as
                ``scaler.scale(loss).backward()`` would leave it, so ``scaler.step(optimizer)`` unscales it.
            recompute_losses: a no-grad re-forward of the same batch, for strategies that need one
                (FAMO's ``after_step``).
        """
        named = dict(zip(self.tasks, losses, strict=True)) if not isinstance(losses, Mapping) else dict(losses)
        if list(named) != list(self.tasks):
            raise ConfigError(f"mtlx.MTL.backward: losses for tasks {list(named)}, expected {list(self.tasks)}")
        if features is None and self.strategy.needs is Need.REPRESENTATION:
            raise ConfigError(
                f"strategy {type(self.strategy).__name__} works on the shared representation: "
                "pass features=z (the tensor the heads read) to MTL.backward"
            )
        step = StepContext(
            model=self.model,
            losses=named,
            representation=features,
            iteration=self.iteration,
            epoch=self.epoch,
            loss_scale=loss_scale,
            recompute_losses=torch.no_grad()(recompute_losses) if recompute_losses is not None else None,
            grad_method=self.per_task_grads,
        )
        result = self.strategy.backward(step)
        self.per_task_grads = step.grad_method  # a two-stage fallback sticks: it is not retried every step
        # without a DDP wrapper: the gradients of the global batch, as the engine does (a no-op on one process)
        distributed.sync_gradients([*self.model.parameters(), *self.parameters()])
        self._last = step
        for t, loss in named.items():
            self._epoch_sums[t] += float(loss.detach())
        self._epoch_steps += 1
        return result

    def step(self) -> None:
        """After ``optimizer.step()``: the strategy's ``after_step`` (e.g. FAMO's weight update)."""
        if self._last is not None:
            self.strategy.after_step(self._last)
            self._last = None
        self.iteration += 1

    def end_epoch(self, mean_losses: Mapping[str, float] | None = None) -> None:
        """At the end of each epoch (DWA, GradNorm): the epoch's mean task losses (tracked, unless given)."""
        if mean_losses is None:
            steps = max(self._epoch_steps, 1)
            mean_losses = {t: s / steps for t, s in self._epoch_sums.items()}
        self.strategy.on_epoch_end(self.epoch, mean_losses)
        self.epoch += 1
        self._epoch_sums = dict.fromkeys(self.tasks, 0.0)
        self._epoch_steps = 0

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly: the strategy's state and the step/epoch counters."""
        return {
            "strategy": self.strategy.state_dict(),
            "iteration": self.iteration,
            "epoch": self.epoch,
            "epoch_sums": dict(self._epoch_sums),
            "epoch_steps": self._epoch_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.strategy.load_state_dict(state["strategy"])
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self._epoch_sums = dict(state["epoch_sums"])
        self._epoch_steps = int(state["epoch_steps"])
