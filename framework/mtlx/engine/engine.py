"""The training engine: a loop that calls its handlers at :class:`Events`; everything optional is a handler.

Evaluation and Delta_m live in :mod:`.evaluation`, the random generators'
checkpoint in :mod:`.rng`; this module is the loop and the training step.

The engine knows tasks, a model, a strategy, an optimiser and loaders. It
never branches on a strategy's name: the strategy's ``backward`` populates
the gradients from a :class:`~mtlx.interfaces.StepContext`, ``after_step``
and ``on_epoch_end`` are called for every strategy alike. A training step
runs under the profiler labels of :mod:`mtlx.phases` (forward, strategy,
optimizer), so ``torch.profiler`` shows where its time goes.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import torch

from .. import distributed
from ..errors import NonFiniteLossError
from ..gradients import resolve_method
from ..interfaces import MTOStrategy, MultiTaskModel, StepContext, TaskSpec
from ..phases import FORWARD, OPTIMIZER, STRATEGY, phase
from .evaluation import measure, summarize
from .events import Events
from .handler import Handler
from .rng import load_rng_state, rng_state
from .state import State
from .step import first_nonfinite, forward, task_losses, to_device

__all__ = ["Engine"]


@attrs.define(kw_only=True, eq=False, repr=False, slots=False)
class Engine:
    """Runs training and evaluation and fires :class:`Events`.

    Args:
        model: the multi-task model, already on ``device``.
        strategy: the MTO strategy.
        optimizer: optimises model parameters and the strategy's extra parameters.
        tasks: task specs in order.
        train_loader: resumable loader of ``(inputs, {task: target})`` batches.
        eval_loaders: ``{split: loader}`` for :meth:`evaluate`.
        state: the loop's state, created with the training budget (``State(max_epochs=..., max_steps=...)``).
        precision: ``fp32``, ``bf16`` (autocast) or ``fp16`` (autocast + GradScaler).
        loss_transform: ``none`` or ``log`` (applied to every task loss).
        on_nonfinite: ``stop`` raises :class:`NonFiniteLossError`; ``skip`` drops the step.
        baseline: single-task results for Delta_m (``{task: {metric: value}}``).
        multi_input: batches hold one input per task.
        scheduler: an LR scheduler stepped by :class:`~mtlx.handlers.LRSchedulerHandler`.
        max_grad_norm: clip the global gradient norm (after the strategy and the DDP sync).
        per_task_grads: how per-task gradients w.r.t. the shared parameters are computed
            (``auto``, ``loop``, ``two-stage``; :mod:`mtlx.gradients`).
    """

    model: MultiTaskModel
    strategy: MTOStrategy
    optimizer: torch.optim.Optimizer
    tasks: dict[str, TaskSpec] = attrs.field(converter=dict)
    train_loader: Any
    eval_loaders: dict[str, Any] = attrs.field(default=None, converter=lambda loaders: dict(loaders or {}))
    device: torch.device = attrs.field(default="cpu", converter=torch.device)
    precision: str = "fp32"
    loss_transform: str = "none"
    on_nonfinite: str = "stop"
    baseline: Mapping[str, Mapping[str, float]] | None = None
    multi_input: bool = False
    scheduler: Any = None
    max_grad_norm: float | None = None
    #: ``per_task_grads`` as given, resolved for the device (``auto`` -> ``loop``/``two-stage``) after init
    grad_method: str = attrs.field(default="auto", alias="per_task_grads")
    scaler: torch.amp.GradScaler | None = attrs.field(init=False, default=None)
    state: State = attrs.field(factory=lambda: State(max_epochs=1))
    handlers: list[Handler] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self.grad_method = resolve_method(self.grad_method, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    # -- handlers ------------------------------------------------------------
    def attach(self, handler: Handler) -> Handler:
        """Call ``handler``'s methods at their events from now on, after the handlers attached before it."""
        if not isinstance(handler, Handler):
            raise TypeError(f"attach() takes an mtlx.engine.Handler, got {type(handler).__qualname__}")
        self.handlers.append(handler)
        return handler

    def fire(self, event: Events) -> None:
        """Call every attached handler's method for ``event``, in attach order."""
        for handler in list(self.handlers):
            getattr(handler, event.value)(self)

    # -- the loop -------------------------------------------------------------
    def _budget_reached(self) -> bool:
        s = self.state
        return s.should_stop or (s.max_steps is not None and s.iteration >= s.max_steps)

    def run(self) -> State:
        """Train until the epoch or step budget is spent (or a handler sets ``should_stop``)."""
        state = self.state
        try:
            self.fire(Events.STARTED)
            while state.epoch < state.max_epochs and not self._budget_reached():
                if state.epoch_iteration == 0:
                    state.epoch_loss_sums = dict.fromkeys(self.tasks, 0.0)
                    self.fire(Events.EPOCH_STARTED)
                num_batches = len(self.train_loader)
                for batch in self.train_loader:
                    self._train_step(batch)
                    # on the last batch let the loader finish, so its state marks the epoch done
                    if state.epoch_iteration < num_batches and self._budget_reached():
                        break
                if state.epoch_iteration >= num_batches:
                    self.strategy.on_epoch_end(state.epoch, state.epoch_mean_losses())
                    self.fire(Events.EPOCH_COMPLETED)
                    state.epoch += 1
                    state.epoch_iteration = 0
                    self.fire(Events.EPOCH_ADVANCED)
            self.fire(Events.COMPLETED)
        except BaseException:
            self.fire(Events.EXCEPTION_RAISED)  # handlers read the error from sys.exception()
            raise
        return state

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast context of the configured precision (a no-op for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _forward_losses(self, inputs: Any, targets: Any) -> tuple[dict[str, torch.Tensor], Any]:
        with self.autocast():
            preds, rep = forward(self.model, inputs, multi_input=self.multi_input)
        return task_losses(preds, targets, self.tasks, self.loss_transform), rep

    def _train_step(self, batch: Any) -> None:
        state = self.state
        state.iteration += 1
        state.epoch_iteration += 1
        inputs, targets = to_device(batch, self.device)
        state.batch = (inputs, targets)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with phase(FORWARD):
            losses, rep = self._forward_losses(inputs, targets)
        bad = first_nonfinite(losses)
        if distributed.is_distributed():  # every process must take the same decision
            if self._on_any_process(bad is not None) and bad is None:
                bad = "(on another process)"
        if bad is not None:
            value = float(losses[bad].detach()) if bad in losses else float("nan")
            self._nonfinite(f"the loss of task {bad!r} is {value}", losses)
            return
        ctx = StepContext(
            model=self.model,
            losses=losses,
            representation=rep,
            iteration=state.iteration - 1,
            epoch=state.epoch,
            loss_scale=self._loss_scale(),
            recompute_losses=torch.no_grad()(lambda: self._forward_losses(inputs, targets)[0]),
            grad_method=self.grad_method,
        )
        with phase(STRATEGY):
            result = self.strategy.backward(ctx)
        self.grad_method = ctx.grad_method  # a two-stage fallback sticks: it is not retried every step
        distributed.sync_gradients(self.trainable_parameters())
        if self.scaler is None and not self._grads_finite():
            self._nonfinite("a gradient is NaN/Inf", losses)
            return
        with phase(OPTIMIZER):
            if self.max_grad_norm is not None:
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.max_grad_norm)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.strategy.after_step(ctx)
        state.losses = {t: float(v.detach()) for t, v in losses.items()}
        state.weights = dict(result.weights) if result.weights is not None else None
        state.diagnostics = {k: float(v) for k, v in result.diagnostics.items()}
        for t, v in state.losses.items():
            state.epoch_loss_sums[t] = state.epoch_loss_sums.get(t, 0.0) + v
        if distributed.is_distributed():  # a stop request (signal) on any process stops all at this step
            state.should_stop = self._on_any_process(state.should_stop)
        self.fire(Events.ITERATION_COMPLETED)

    def _on_any_process(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any process; the tensor lives on the engine's device (NCCL rejects CPU ones)."""
        return bool(distributed.all_reduce_mean(torch.tensor(float(flag), device=self.device)) > 0)

    def _loss_scale(self) -> float:
        """The fp16 GradScaler's current scale (initialised on first use), 1.0 otherwise."""
        return 1.0 if self.scaler is None else float(self.scaler.scale(torch.ones((), device=self.device)))

    def _grads_finite(self) -> bool:
        grads = [p.grad for p in self.trainable_parameters() if p.grad is not None]
        if not grads:
            return True
        norms = torch.stack([g.detach().float().norm() for g in grads])
        return bool(torch.isfinite(norms).all())

    def _nonfinite(self, what: str, losses: Mapping[str, torch.Tensor]) -> None:
        state = self.state
        shown = ", ".join(f"{t}={float(v.detach()):.4g}" for t, v in losses.items())
        message = f"step {state.iteration} (epoch {state.epoch}): {what}; losses: {shown}"
        self.optimizer.zero_grad(set_to_none=True)
        if self.on_nonfinite == "stop":
            raise NonFiniteLossError(message + ". Lower the learning rate or use --on-nonfinite skip.")
        warnings.warn(f"skipping {message}", RuntimeWarning, stacklevel=2)

    # -- evaluation -----------------------------------------------------------
    def evaluate(self, split: str, *, name: str | None = None) -> dict[str, dict[str, float]]:
        """Metrics of every task over the whole ``split``; fires EVAL_COMPLETED.

        ``name`` (default: the split) is what the results are stored and
        logged under, so that re-evaluating a split with other weights (the
        best checkpoint at the end of a run) does not pass for the same row.
        """
        name = name or split
        meters = measure(self.model, self.eval_loaders[split], self.tasks, device=self.device,
                         autocast=self.autocast, multi_input=self.multi_input)
        metrics = {t: m.compute() for t, m in meters.items()}
        state = self.state
        state.metrics[name] = metrics
        state.summary[name] = summarize(metrics, self.baseline, self.tasks)
        state.details[name] = {t: d for t, m in meters.items() if (d := m.details())}
        state.last_eval = name
        self.fire(Events.EVAL_COMPLETED)
        return metrics

    # -- checkpointable state ---------------------------------------------------
    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs (tensors and plain values only)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "strategy": self.strategy.state_dict(),
            "loader": self.train_loader.state_dict(),
            "state": self.state.state_dict(),
            "handlers": {h.key: s for h in self.handlers if (s := h.state_dict()) is not None},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.strategy.load_state_dict(state["strategy"])
        self.train_loader.load_state_dict(state["loader"])
        self.state.load_state_dict(state["state"])
        for h in self.handlers:
            if h.key in state["handlers"]:
                h.load_state_dict(state["handlers"][h.key])
        load_rng_state(state["rng"])
