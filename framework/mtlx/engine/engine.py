"""The training engine: a loop that calls its handlers at :class:`Events`; everything optional is a handler.

Evaluation and Delta_m live in :mod:`.evaluation`, the random generators'
checkpoint in :mod:`.rng`; this module is the loop and the training step.
The strategy's part of the step is :class:`~.driver.StepDriver`'s, as in ``mtlx.MTL``: the
engine is the loop around it (batches, forward, AMP, clipping, the finiteness guard, events).

The engine knows tasks, a model, a strategy, an optimiser and loaders, and
never branches on a strategy's name (:mod:`mtlx.interfaces.strategy`). A training step
runs under the profiler labels of :mod:`mtlx.phases` (forward, strategy,
optimizer), so ``torch.profiler`` shows where its time goes.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs
import torch

from .. import distributed
from ..data import worker_message
from ..errors import ConfigError, DataError, MtlxError, NonFiniteLossError, component_failed
from ..gradients import resolve_method
from ..interfaces import MTOStrategy, MultiTaskModel, StepContext, TaskSpec
from ..interfaces.strategy import owned_step_conflict
from ..phases import FORWARD, OPTIMIZER, phase
from ..registry import distribution_of
from .driver import StepDriver
from .evaluation import measure, summarize
from .events import Events
from .finite import (
    all_processes_ok,
    finite_flags,
    nonfinite_loss,
    shown,
    tasks_with_nonfinite_gradients,
    watched_tensors,
)
from .handler import Handler
from .rng import load_rng_state, rng_state
from .state import State
from .step import autocast, forward, nonfinite_message, task_losses, to_device

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
        eval_loaders: ``{split: loader}`` for :meth:`evaluate`; under a process group, each process's shard
            (:func:`mtlx.distributed.batch_shard`): the meters are merged across processes.
        heldout_loader: a resumable loader of the strategy's ``heldout_split`` (a bilevel strategy's), cycled:
            one batch per step, its position in the checkpoint.
        state: the loop's state, created with the training budget (``State(max_epochs=..., max_steps=...)``).
        precision: ``fp32``, ``bf16`` (autocast) or ``fp16`` (autocast + GradScaler).
        loss_transform: ``none`` or ``log`` (applied to every task loss).
        on_nonfinite: ``stop`` raises :class:`NonFiniteLossError`; ``skip`` drops the step, and raises after
            ``max_consecutive_skips`` steps skipped in a row.
        baseline: single-task results for Delta_m (``{task: {metric: value}}``).
        multi_input: batches hold one input per task.
        scheduler: an LR scheduler stepped by :class:`~mtlx.handlers.LRSchedulerHandler`.
        max_grad_norm: clip the global gradient norm (after the strategy and the DDP sync).
        per_task_grads: how per-task gradients w.r.t. the shared parameters are computed
            (``auto``, ``loop``, ``two-stage``; :mod:`mtlx.gradients`).
        labels: ``{"strategy" | "dataset" | "meter" | "model": "strategy 'ew' from mtlx-baselines==0.1.0 ..."}``:
            an exception from that component (or from a plugin's handler) becomes a
            :class:`~mtlx.errors.ComponentError` naming it; without a label it propagates as it is.

    The finiteness guard reads the step's losses and one flag per loss, for the gradients and per tensor of
    the model's state (parameters and buffers, BatchNorm statistics included) in one host transfer per step,
    before the optimiser step; the state after the last step is checked before every checkpoint and
    evaluation (:meth:`verify_finite`), so no checkpoint ever holds a non-finite value.
    """

    model: MultiTaskModel
    strategy: MTOStrategy
    optimizer: torch.optim.Optimizer
    tasks: dict[str, TaskSpec] = attrs.field(converter=dict)
    train_loader: Any
    eval_loaders: dict[str, Any] = attrs.field(default=None, converter=lambda loaders: dict(loaders or {}))
    heldout_loader: Any = None
    device: torch.device = attrs.field(default="cpu", converter=torch.device)
    precision: str = "fp32"
    loss_transform: str = "none"
    on_nonfinite: str = "stop"
    max_consecutive_skips: int = 10
    baseline: Mapping[str, Mapping[str, float]] | None = None
    multi_input: bool = False
    scheduler: Any = None
    max_grad_norm: float | None = None
    per_task_grads: str = "auto"  # as given: the driver holds it resolved for the device, and sticky
    scaler: torch.amp.GradScaler | None = attrs.field(init=False, default=None)
    state: State = attrs.field(factory=lambda: State(max_epochs=1), on_setattr=lambda e, _, v: e._drive(v))
    driver: StepDriver = attrs.field(init=False)  # the strategy's part of each step, shared with mtlx.MTL
    labels: Mapping[str, str] = attrs.field(factory=dict)
    handlers: list[Handler] = attrs.field(init=False, factory=list)
    _skipped: list[int] = attrs.field(init=False, factory=list)  # the steps skipped in a row (skip mode)
    _verified_at: int | None = attrs.field(init=False, default=None)  # the iteration verify_finite last passed
    _stop_requested: bool = attrs.field(init=False, default=False)  # by request_stop, shared at a step's end
    _heldout: Iterator[Any] | None = attrs.field(init=False, default=None)  # the held-out loader's current pass

    def __attrs_post_init__(self) -> None:
        engine = weakref.proxy(self)  # no cycle: the engine (its loaders' workers) is freed as soon as it is dropped
        self.driver = StepDriver(self.strategy, self.state, self.tasks, lambda: engine.trainable_parameters(),
                                 resolve_method(self.per_task_grads, self.device),
                                 lambda where: engine.guard("strategy", where))
        k, available = self.strategy.batches_per_step, len(self.train_loader)
        if available < k:
            raise ConfigError(f"{self._strategy_label} draws {k} training batches per step, but the "
                              f"training loader has {available} per epoch; use a larger training set or a smaller "
                              "batch size")
        self._check_heldout()
        conflict = owned_step_conflict(self.strategy, self.optimizer, loss_scaling=self.precision == "fp16",
                                       clipping=self.max_grad_norm is not None)
        if conflict is not None:
            raise ConfigError(f"{self._strategy_label} {conflict}")
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    @property
    def _strategy_label(self) -> str:
        """How messages name the strategy: its label (``mtlx run``'s engine), else its class."""
        return self.labels.get("strategy", f"strategy {type(self.strategy).__name__}")

    def _drive(self, state: State) -> State:
        """A State set later (by a handler, a test) is the driver's too."""
        self.driver.state = state
        return state

    def _check_heldout(self) -> None:
        """A strategy's held-out split has a loader with at least one batch (one line otherwise)."""
        split = self.strategy.heldout_split
        if split is None:
            return
        who = self._strategy_label
        if self.heldout_loader is None:
            raise ConfigError(f"{who} draws a held-out batch of split {split!r} per step, but the engine was "
                              "given no heldout_loader")
        if len(self.heldout_loader) == 0:
            raise ConfigError(f"{who} draws a held-out batch of split {split!r} per step, but its loader has no "
                              "batch; use a larger split or a smaller batch size")

    def _next_heldout(self) -> Any:
        """The next batch of the held-out loader, which starts a new pass (epoch) where the last one ended."""
        for _ in range(2):
            if self._heldout is None:
                self._heldout = self.batches(self.heldout_loader, f"held-out ({self.strategy.heldout_split})")
            batch = next(self._heldout, None)
            if batch is not None:
                return batch
            self._heldout = None
        raise ConfigError(f"the held-out loader of split {self.strategy.heldout_split!r} gave no batch")

    # -- handlers ------------------------------------------------------------
    def attach(self, handler: Handler) -> Handler:
        """Call ``handler``'s methods at their events from now on, after the handlers attached before it."""
        if not isinstance(handler, Handler):
            raise TypeError(f"attach() takes an mtlx.engine.Handler, got {type(handler).__qualname__}")
        self.handlers.append(handler)
        return handler

    def fire(self, event: Events) -> None:
        """Call every attached handler's method for ``event``, in attach order.

        With ``labels`` (an engine ``mtlx run`` built), a plugin's handler that raises is named
        (:class:`~mtlx.errors.ComponentError`); the core's errors, and every error without labels, propagate.
        """
        for handler in list(self.handlers):
            try:
                getattr(handler, event.value)(self)
            except MtlxError:
                raise
            except Exception as error:
                module = type(handler).__module__
                if not self.labels or module == "mtlx" or module.startswith("mtlx."):
                    raise
                where = f"at {event.value} of step {self.state.iteration}"
                label = f"handler {type(handler).__qualname__} from {distribution_of(type(handler))}"
                raise component_failed(label, where, error) from error

    @contextlib.contextmanager
    def guard(self, kind: str, where: str, worker: bool = False) -> Iterator[None]:
        """Name the component ``kind`` (a key of ``labels``) when the block raises; ``worker``: the block
        reads a DataLoader, whose workers' errors come back wrapped in their traceback and are unwrapped."""
        try:
            yield
        except DataError as error:
            original = worker_message(error) if worker else None
            if original is None:
                raise
            raise DataError(original) from None
        except MtlxError:
            raise
        except Exception as error:
            label = self.labels.get(kind)
            if label is None:
                raise
            raise component_failed(label, where, error, worker_message(error) if worker else None) from error

    def batches(self, loader: Iterable[Any], what: str) -> Iterator[Any]:
        """``loader``'s batches, with an error while loading one named as the dataset's (see :meth:`guard`)."""
        with self.guard("dataset", f"loading a {what} batch", worker=True):
            iterator = iter(loader)
        while True:
            with self.guard("dataset", f"loading a {what} batch", worker=True):
                try:
                    batch = next(iterator)
                except StopIteration:
                    return
            yield batch

    # -- the loop -------------------------------------------------------------
    def _budget_reached(self) -> bool:
        return self.state.should_stop or self.state.steps_done

    @property
    def steps_per_epoch(self) -> int:
        """``len(train_loader) // k`` for a strategy drawing k batches per step (the last ``len % k`` are drawn
        and left unused, so the loader ends its epoch as usual)."""
        return len(self.train_loader) // self.strategy.batches_per_step

    def run(self) -> State:
        """Train until the epoch or step budget is spent (or a handler sets ``should_stop``)."""
        state = self.state
        try:
            self.fire(Events.STARTED)
            while state.epoch < state.max_epochs and not self._budget_reached():
                if state.epoch_iteration == 0:
                    self.driver.start_epoch()
                    self.fire(Events.EPOCH_STARTED)
                num_steps, drawn = self.steps_per_epoch, []
                for batch in self.batches(self.train_loader, "training"):
                    drawn.append(batch)
                    if len(drawn) < self.strategy.batches_per_step or state.epoch_iteration >= num_steps:
                        continue  # the step's next batch, or the unused rest of the epoch
                    self._train_step(*drawn)
                    drawn = []
                    # on the last step let the loader finish, so its state marks the epoch done
                    if state.epoch_iteration < num_steps and self._budget_reached():
                        break
                if state.epoch_iteration >= num_steps:
                    self.verify_finite(f"the end of epoch {state.epoch + 1}")  # before it is evaluated
                    self.driver.end_epoch()
                    self.fire(Events.EPOCH_COMPLETED)
                    self.driver.next_epoch()
                    self.fire(Events.EPOCH_ADVANCED)
            self.fire(Events.COMPLETED)
        except BaseException:
            self.fire(Events.EXCEPTION_RAISED)  # handlers read the error from sys.exception()
            raise
        return state

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast context of the configured precision (a no-op for fp32)."""
        return autocast(self.device, self.precision)

    def _forward_losses(self, inputs: Any, targets: Any) -> tuple[dict[str, torch.Tensor], Any]:
        with self.autocast():
            preds, rep = forward(self.model, inputs, multi_input=self.multi_input)
        return task_losses(preds, targets, self.tasks, self.loss_transform), rep

    def _train_step(self, batch: Any, *extra_batches: Any) -> None:
        """One optimiser step on ``batch`` (and the ``extra_batches`` of a strategy with ``batches_per_step > 1``)."""
        state = self.state
        state.iteration += 1
        state.epoch_iteration += 1
        inputs, targets = to_device(batch, self.device)
        state.batch = (inputs, targets)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with phase(FORWARD), self.guard("model", f"in the forward of step {state.iteration}"):
            losses, rep = self._forward_losses(inputs, targets)
            extras = [self._forward_losses(*to_device(b, self.device)) for b in extra_batches]
        heldout = None
        if self.heldout_loader is not None and self.strategy.heldout_split is not None:
            held = to_device(self._next_heldout(), self.device)
            heldout = lambda: self._forward_losses(*held)[0]  # run by the strategy, at its parameters
        if self.on_nonfinite == "skip" and not all(self._losses_finite(x) for x in [losses, *(e for e, _ in extras)]):
            return  # a skipped step never reaches the strategy (its state stays clean); costs one more sync
        reforward = lambda: self._forward_losses(inputs, targets)[0]  # the step's batch again (at a strategy's parameters)
        ctx = StepContext(
            model=self.model,
            losses=losses,
            representation=rep,
            iteration=state.iteration - 1,
            epoch=state.epoch,
            loss_scale=self._loss_scale(),
            recompute_losses=torch.no_grad()(reforward),
            extra_losses=[e for e, _ in extras],
            extra_representations=[z for _, z in extras],
            heldout_losses=heldout,
            train_losses=reforward if self.strategy.needs_train_losses else None,
            learning_rate=float(self.optimizer.param_groups[0]["lr"]),
        )
        try:
            result = self.driver.backward(ctx)
        except MtlxError:
            self._losses_finite(losses, everywhere=False)  # a NaN loss, not the strategy, is at fault: say so
            raise
        values = self._checked_losses(losses, inputs, targets)
        if values is None:
            return
        with phase(OPTIMIZER):
            if self.max_grad_norm is not None:
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.max_grad_norm)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            elif not self.strategy.owns_optimizer_step:  # MTAdam's step is the driver's, in the optimiser's place
                self.optimizer.step()
            self.driver.finish(ctx, self.optimizer)
        self._skipped.clear()
        state.losses = values
        state.weights = dict(result.weights) if result.weights is not None else None
        state.diagnostics = {k: float(v) for k, v in result.diagnostics.items()}
        self.driver.record(values)
        if distributed.is_distributed():  # a stop request (signal) on any process stops all at this step
            state.should_stop = self._on_any_process(state.should_stop or self._stop_requested)
        self.fire(Events.ITERATION_COMPLETED)

    def request_stop(self) -> None:
        """Stop after the current step; safe to call at any point (a signal handler does).

        Under a process group the request waits for the end of a step, where the processes share it: every
        process then stops after the same step. Setting ``state.should_stop`` on one process alone, after that
        step's sharing, would stop it while the others enter the next step's collectives and wait there.
        """
        self._stop_requested = True
        if not distributed.is_distributed():
            self.state.should_stop = True

    def _on_any_process(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any process; the tensor lives on the engine's device (NCCL rejects CPU ones)."""
        return bool(distributed.all_reduce_mean(torch.tensor(float(flag), device=self.device)) > 0)

    def _loss_scale(self) -> float:
        """The fp16 GradScaler's current scale (initialised on first use), 1.0 otherwise."""
        return 1.0 if self.scaler is None else float(self.scaler.scale(torch.ones((), device=self.device)))

    def _losses_finite(self, losses: Mapping[str, torch.Tensor], everywhere: bool = True) -> bool:
        """False (after :meth:`_nonfinite`) when a task's loss is NaN/Inf (:func:`~.finite.nonfinite_loss`)."""
        what = nonfinite_loss(losses, everywhere)
        if what is not None:
            self._nonfinite(what, losses)
        return what is None

    def _checked_losses(self, losses: Mapping[str, torch.Tensor], inputs: Any, targets: Any) -> dict[str, float] | None:
        """The step's loss values, or None for a skipped step: the step's one host sync.

        Read in one transfer: the losses, whether each is finite, whether the gradients are (unless the fp16
        GradScaler handles them) and whether each tensor of the model's state is, all AND-ed over processes.
        """
        names, tensors = watched_tensors(self.model, self.strategy.extra_parameters())
        grads = [g for p in self.trainable_parameters() if (g := p.grad) is not None and g.numel() > 0]
        stacked = torch.stack([v.detach().float() for v in losses.values()])
        grads_ok = finite_flags(grads).all() if grads and self.scaler is None else torch.ones((), dtype=torch.bool)
        flags = torch.cat([stacked.isfinite(), grads_ok.reshape(1).to(stacked.device),
                           finite_flags(tensors).to(stacked.device)])
        host = torch.cat([stacked, all_processes_ok(flags)]).tolist()
        n = len(losses)
        values, loss_ok, grad_ok, state_ok = host[:n], host[n : 2 * n], host[2 * n], host[2 * n + 1 :]
        for name, ok in zip(names, state_ok, strict=True):
            if ok < 1.0:
                raise NonFiniteLossError(self._message(f"{name} is NaN/Inf", losses) + (
                    ". Skipping steps cannot repair the model: lower the learning rate"
                    if self.on_nonfinite == "skip" else ". Lower the learning rate"))
        for (task, value), ok in zip(zip(losses, values, strict=True), loss_ok, strict=True):
            if ok < 1.0:
                self._nonfinite(f"the loss of task {task!r} is {shown(value)}", losses)
                return None
        if grad_ok < 1.0:
            tasks = tasks_with_nonfinite_gradients(self.model, self.trainable_parameters(), self.device,
                                                   lambda: self._forward_losses(inputs, targets)[0])
            what = (f"the gradient of task{'s' * (len(tasks) > 1)} {', '.join(map(repr, tasks))} is NaN/Inf" if tasks
                    else "the combined gradient is NaN/Inf (every task's own gradient is finite)")
            self._nonfinite(what, losses)
            return None
        return dict(zip(losses, values, strict=True))

    def verify_finite(self, when: str) -> None:
        """Raise :class:`NonFiniteLossError` naming the first parameter or buffer that is NaN/Inf (one sync;
        once per iteration): before a checkpoint is written or the model evaluated, at ``when``.

        It reads this process's tensors only (no collective): the step's own check has already AND-ed the flags
        over processes, whose parameters are equal (each process evaluates its shard; rank 0 writes checkpoints).
        """
        if self._verified_at == self.state.iteration:
            return
        names, tensors = watched_tensors(self.model, self.strategy.extra_parameters())
        for name, ok in zip(names, finite_flags(tensors).tolist(), strict=True):
            if not ok:
                state = self.state
                raise NonFiniteLossError(f"step {state.iteration} (epoch {state.epoch}): {name} is NaN/Inf at "
                                         f"{when}; nothing non-finite was written. Lower the learning rate")
        self._verified_at = self.state.iteration

    def _message(self, what: str, losses: Mapping[str, torch.Tensor]) -> str:
        return nonfinite_message(self.state.iteration, self.state.epoch, what, losses)

    def _nonfinite(self, what: str, losses: Mapping[str, torch.Tensor]) -> None:
        message = self._message(what, losses)
        self.optimizer.zero_grad(set_to_none=True)
        if self.on_nonfinite == "stop":
            raise NonFiniteLossError(message + ". Lower the learning rate or use --on-nonfinite skip.")
        self._skipped.append(self.state.iteration)
        if len(self._skipped) >= self.max_consecutive_skips:
            raise NonFiniteLossError(
                f"{len(self._skipped)} consecutive steps skipped (steps {self._skipped[0]} to {self._skipped[-1]}); "
                f"the last: {message}. Lower the learning rate, or raise train.max_consecutive_skips"
            )
        warnings.warn(f"skipping {message}", RuntimeWarning, stacklevel=2)

    # -- evaluation -----------------------------------------------------------
    def evaluate(self, split: str, *, name: str | None = None) -> dict[str, dict[str, float]]:
        """Metrics of every task over the whole ``split``; fires EVAL_COMPLETED.

        ``name`` (default: the split) is what the results are stored and
        logged under, so that re-evaluating a split with other weights (the
        best checkpoint at the end of a run) does not pass for the same row.
        """
        name = name or split
        self.verify_finite(f"the evaluation of {split}")
        meters = measure(self.model, self.batches(self.eval_loaders[split], split), self.tasks, device=self.device,
                         autocast=self.autocast, multi_input=self.multi_input, guard=self.guard)
        with self.guard("meter", f"computing the metrics of {split}"):
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
            "strategy": self._strategy_state(),
            "loader": self.train_loader.state_dict(),
            "heldout_loader": self.heldout_loader.state_dict() if self.heldout_loader is not None else None,
            "state": self.state.state_dict(),
            "handlers": {h.key: s for h in self.handlers if (s := h.state_dict()) is not None},
            "rng": rng_state(),
        }

    def rank_state(self) -> dict[str, Any]:
        """What differs between data-parallel processes: the strategy's state (from this process's losses),
        the epoch's loss sums and the RNG states (CUDA's per device). Checkpoints hold every rank's."""
        return {"strategy": self._strategy_state(), "epoch_loss_sums": dict(self.state.epoch_loss_sums),
                "rng": rng_state()}

    def load_rank_state(self, state: Mapping[str, Any]) -> None:
        """Restore this process's part of a checkpoint (:meth:`rank_state`) after :meth:`load_state_dict`."""
        with self.guard("strategy", "loading its state from the checkpoint"):
            self.strategy.load_state_dict(state["strategy"])
        self.state.epoch_loss_sums = dict(state["epoch_loss_sums"])
        load_rng_state(state["rng"])

    def _strategy_state(self) -> Any:
        with self.guard("strategy", "in state_dict"):
            return self.strategy.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        with self.guard("strategy", "loading its state from the checkpoint"):
            self.strategy.load_state_dict(state["strategy"])
        self.train_loader.load_state_dict(state["loader"])
        if self.heldout_loader is not None and state.get("heldout_loader") is not None:
            self.heldout_loader.load_state_dict(state["heldout_loader"])
            self._heldout = None  # the next draw resumes at the saved position
        self.state.load_state_dict(state["state"])
        for h in self.handlers:
            if (saved := h.saved_state(state["handlers"])) is not None:
                h.load_state_dict(saved)
        load_rng_state(state["rng"])
