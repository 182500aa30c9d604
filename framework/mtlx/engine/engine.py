"""The training engine: a loop that fires events; everything optional is a handler.

The engine knows tasks, a model, a strategy, an optimiser and loaders. It
never branches on a strategy's name: the strategy's ``backward`` populates
the gradients from a :class:`~mtlx.interfaces.StepContext`, ``after_step``
and ``on_epoch_end`` are called for every strategy alike. A training step
runs under the profiler labels of :mod:`mtlx.phases` (forward, strategy,
optimizer), so ``torch.profiler`` shows where its time goes.
"""

from __future__ import annotations

import contextlib
import inspect
import random
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

from .. import distributed
from ..errors import NonFiniteLossError
from ..gradients import resolve_method
from ..interfaces import MTOStrategy, MultiTaskModel, StepContext, TaskSpec
from ..metrics import delta_m
from ..phases import FORWARD, OPTIMIZER, STRATEGY, phase
from .events import EPOCH_EVENTS, ITERATION_EVENTS, EventFilter, Events
from .handler import Handler
from .state import StashKey, State
from .step import first_nonfinite, forward, task_losses

__all__ = ["Engine", "RemovableHandle", "to_device"]


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors (nested in dicts, lists, tuples, or objects with ``.to``) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    if hasattr(obj, "to"):
        return obj.to(device)
    return obj


class RemovableHandle:
    """Returned by :meth:`Engine.add_event_handler`; ``remove()`` detaches the handler."""

    def __init__(self, registry: list[Any], entry: Any):
        self._registry, self._entry = registry, entry

    def remove(self) -> None:
        if self._entry in self._registry:
            self._registry.remove(self._entry)


class Engine:
    """Runs training and evaluation and fires :class:`Events`.

    Args:
        model: the multi-task model, already on ``device``.
        strategy: the MTO strategy.
        optimizer: optimises model parameters and the strategy's extra parameters.
        tasks: task specs in order.
        train_loader: resumable loader of ``(inputs, {task: target})`` batches.
        eval_loaders: ``{split: loader}`` for :meth:`evaluate`.
        max_epochs / max_steps: the training budget.
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

    def __init__(
        self,
        *,
        model: MultiTaskModel,
        strategy: MTOStrategy,
        optimizer: torch.optim.Optimizer,
        tasks: Mapping[str, TaskSpec],
        train_loader: Any,
        eval_loaders: Mapping[str, Any] | None = None,
        device: torch.device | str = "cpu",
        max_epochs: int = 1,
        max_steps: int | None = None,
        precision: str = "fp32",
        loss_transform: str = "none",
        on_nonfinite: str = "stop",
        baseline: Mapping[str, Mapping[str, float]] | None = None,
        multi_input: bool = False,
        scheduler: Any = None,
        max_grad_norm: float | None = None,
        per_task_grads: str = "auto",
    ):
        self.model = model
        self.strategy = strategy
        self.optimizer = optimizer
        self.tasks = dict(tasks)
        self.train_loader = train_loader
        self.eval_loaders = dict(eval_loaders or {})
        self.device = torch.device(device)
        self.precision = precision
        self.loss_transform = loss_transform
        self.on_nonfinite = on_nonfinite
        self.baseline = baseline
        self.multi_input = multi_input
        self.scheduler = scheduler
        self.max_grad_norm = max_grad_norm
        self.grad_method = resolve_method(per_task_grads, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        self.state = State(max_epochs=max_epochs, max_steps=max_steps)
        self.handlers: list[Handler] = []
        self._event_handlers: dict[Events, list[tuple[EventFilter | None, Callable[..., Any], tuple[Any, ...]]]] = {
            e: [] for e in Events
        }
        self._fire_counts: dict[Events, int] = dict.fromkeys(Events, 0)
        self.last_exception: BaseException | None = None

    # -- handlers ------------------------------------------------------------
    def add_event_handler(
        self, event: Events | EventFilter, fn: Callable[..., Any], *args: Any
    ) -> RemovableHandle:
        """Call ``fn(engine, *args)`` when ``event`` fires; the signature is checked now."""
        flt = event if isinstance(event, EventFilter) else None
        ev = event.event if isinstance(event, EventFilter) else event
        if not isinstance(ev, Events):
            raise ValueError(f"unknown event {event!r}; expected a member of mtlx.engine.Events")
        try:
            inspect.signature(fn).bind(self, *args)
        except TypeError as error:
            raise ValueError(
                f"handler {getattr(fn, '__qualname__', fn)!r} for {ev.name} cannot be called as "
                f"fn(engine{', ' + ', '.join(map(repr, args)) if args else ''}): {error}"
            ) from None
        entry = (flt, fn, args)
        self._event_handlers[ev].append(entry)
        return RemovableHandle(self._event_handlers[ev], entry)

    def on(self, event: Events | EventFilter, *args: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of :meth:`add_event_handler`."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add_event_handler(event, fn, *args)
            return fn

        return decorator

    def attach(self, handler: Handler) -> Handler:
        """Connect every event method ``handler`` overrides (with its ``every`` filters)."""
        for ev in Events:
            method = getattr(type(handler), ev.value, None)
            if method is None or method is getattr(Handler, ev.value):
                continue
            every = handler.every.get(ev.value)
            self.add_event_handler(ev(every=every) if every else ev, getattr(handler, ev.value))
        self.handlers.append(handler)
        return handler

    def fire(self, event: Events) -> None:
        """Call the handlers of ``event`` whose filters match the occurrence count."""
        self._fire_counts[event] += 1
        if event in ITERATION_EVENTS:
            count = self.state.iteration
        elif event in EPOCH_EVENTS:
            count = self.state.epoch + 1
        else:
            count = self._fire_counts[event]
        for flt, fn, args in list(self._event_handlers[event]):
            if flt is None or flt.matches(self, count):
                fn(self, *args)

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
                    self._complete_epoch()
            self.fire(Events.COMPLETED)
        except BaseException as error:
            self.last_exception = error
            self.fire(Events.EXCEPTION_RAISED)
            raise
        return state

    def _complete_epoch(self) -> None:
        state = self.state
        n = max(state.epoch_iteration, 1)
        mean_losses = {t: v / n for t, v in state.epoch_loss_sums.items()}
        self.strategy.on_epoch_end(state.epoch, mean_losses)
        self.fire(Events.EPOCH_COMPLETED)
        state.epoch += 1
        state.epoch_iteration = 0

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
        self.fire(Events.ITERATION_STARTED)
        inputs, targets = to_device(batch, self.device)
        state.batch = (inputs, targets)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with phase(FORWARD):
            losses, rep = self._forward_losses(inputs, targets)
        self.fire(Events.AFTER_FORWARD)
        bad = first_nonfinite(losses)
        if distributed.is_distributed():  # every process must take the same decision
            if self._on_any_process(bad is not None) and bad is None:
                bad = "(on another process)"
        if bad is not None:
            value = float(losses[bad].detach()) if bad in losses else float("nan")
            self._nonfinite(f"the loss of task {bad!r} is {value}", losses)
            return

        def recompute() -> dict[str, torch.Tensor]:
            with torch.no_grad():
                return self._forward_losses(inputs, targets)[0]

        ctx = StepContext(
            model=self.model,
            losses=losses,
            representation=rep,
            iteration=state.iteration - 1,
            epoch=state.epoch,
            loss_scale=self._loss_scale(),
            average_across_processes=distributed.all_reduce_mean,
            recompute_losses=recompute,
            grad_method=self.grad_method,
        )
        with phase(STRATEGY):
            result = self.strategy.backward(ctx)
        self.grad_method = ctx.grad_method  # a two-stage fallback sticks: it is not retried every step
        distributed.sync_gradients(self.trainable_parameters())
        self.fire(Events.AFTER_BACKWARD)
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
        self.fire(Events.AFTER_OPTIMIZER_STEP)
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
        if self.scaler is None:
            return 1.0
        return float(self.scaler.scale(torch.ones((), device=self.device)))

    def _grads_finite(self) -> bool:
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
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
    @torch.no_grad()
    def evaluate(self, split: str, *, name: str | None = None) -> dict[str, dict[str, float]]:
        """Metrics of every task over the whole ``split``; fires EVAL_COMPLETED.

        ``name`` (default: the split) is what the results are stored and
        logged under, so that re-evaluating a split with other weights (the
        best checkpoint at the end of a run) does not pass for the same row.
        """
        name = name or split
        meters = {t: spec.meter() for t, spec in self.tasks.items()}
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in self.eval_loaders[split]:
                inputs, targets = to_device(batch, self.device)
                with self.autocast():
                    preds, _ = forward(self.model, inputs, multi_input=self.multi_input)
                for t in preds:  # multi-input evaluation: a task whose data ran out is absent
                    meters[t].update(preds[t].float(), targets[t])
        finally:
            self.model.train(was_training)
        metrics = {t: m.compute() for t, m in meters.items()}
        self.state.metrics[name] = metrics
        self.state.summary[name] = self.summarize(metrics, meters)
        self.state.details[name] = {t: d for t, m in meters.items() if (d := m.details())}
        self.state.stash[_LAST_EVAL_SPLIT] = name
        self.fire(Events.EVAL_COMPLETED)
        return metrics

    def summarize(self, metrics: Mapping[str, Mapping[str, float]], meters: Mapping[str, Any]) -> dict[str, float]:
        """Delta_m in both conventions against the baseline (tasks present in both)."""
        if not self.baseline:
            return {}
        baseline = {t: dict(self.baseline[t]) for t in metrics if t in self.baseline}
        if not baseline:
            return {}
        hib = {t: dict(type(meters[t]).higher_is_better) for t in baseline}
        return {
            "delta_m_task": delta_m(metrics, baseline, hib, "task"),
            "delta_m_metric": delta_m(metrics, baseline, hib, "metric"),
        }

    @property
    def last_eval_split(self) -> str | None:
        return self.state.stash.get(_LAST_EVAL_SPLIT)

    # -- checkpointable state ---------------------------------------------------
    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs (tensors and plain values only)."""
        np_state = np.random.get_state()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "strategy": self.strategy.state_dict(),
            "loader": self.train_loader.state_dict(),
            "state": self.state.state_dict(),
            "handlers": {h.key: s for h in self.handlers if (s := h.state_dict()) is not None},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": _python_rng_state(),
                # int64, not uint32: torch.save knows uint32 only from torch 2.6 on (the declared floor is lower)
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            },
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
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        random.setstate(_python_rng_unpack(rng["python"]))
        kind, keys, *rest = rng["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))


_LAST_EVAL_SPLIT: StashKey[str] = StashKey("last_eval_split")


def _python_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_rng_unpack(state: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
