"""Any installed strategy in your own training loop: ``mtlx.MTL``.

The engine is one way to train; most researchers already have a loop (plain PyTorch, Lightning, their own).
:class:`MTL` gives such a loop the same step the engine takes (the same :class:`~mtlx.engine.driver.StepDriver`):
the user computes the shared features and the per-task losses, ``mtl.backward(losses, features=z)`` populates
``.grad`` of the shared and task-specific parameters exactly as ``mtlx run`` would, and the user's optimiser steps
(the loop: README.md, "The shortest path").

A strategy that takes the optimiser step itself (``strategy.owns_optimizer_step``: MTAdam) is stepped by
``mtl.step(optimizer)`` in place of ``optimizer.step(); mtl.step()``; the optimiser (Adam or AdamW) only
supplies its param groups' learning rate (a scheduler's) and weight decay. The strategy's cross-step state
is in ``mtl.state_dict()`` for the user's checkpoint.

A user's loop has none of the engine's guarantees about what it hands over, so :class:`MTL` checks its
arguments before any ``.grad`` is written and refuses misuse with one line naming the argument and task
(:class:`~mtlx.errors.ConfigError`): a strategy fed a wrong ``features`` or a non-scalar loss would
otherwise run on quietly (Rep-MTL becomes EW) or fail deep inside torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from .build import strategy_by_name
from .engine import State
from .engine.driver import StepDriver
from .engine.finite import nonfinite_loss
from .engine.step import nonfinite_message
from .errors import CheckpointError, ConfigError, NonFiniteLossError
from .gradients import METHODS
from .interfaces import EncoderHeads, MTOStrategy, Need, StepContext, StepResult
from .interfaces.strategy import owned_step_conflict
from .registry import Registries

__all__ = ["EPOCH_WARNING_STEPS", "MTL", "SkippedStep"]

Parameters = nn.Module | Iterable[nn.Parameter]

#: steps without ``end_epoch`` after which a strategy with an epoch hook warns, unless ``steps_per_epoch`` is given
EPOCH_WARNING_STEPS = 1000
#: what ``MTL(nonfinite=...)`` does with a NaN/Inf loss
NONFINITE = ("raise", "skip")
_BACKWARD = "mtlx.MTL.backward"  # where its argument errors say they come from
_PASS_FEATURES = "pass features=z, the tensor the heads read (z = shared(x), each loss from heads[task](z))"
#: how a user's loop provides what a strategy may find missing in its step (StepContext.missing)
_HOW_TO_PROVIDE = {
    "recompute_losses": "pass recompute_losses= (a no-grad re-forward of the same batch: lambda: {task: loss}) "
                        "to MTL.backward",
    "heldout_losses": "pass heldout_losses= (a forward of a held-out batch through shared and heads: "
                      "lambda: {task: loss}) to MTL.backward",
    "train_losses": "pass train_losses= (a forward of the same batch through shared and heads, with graph: "
                    "lambda: {task: loss}) to MTL.backward",
    "learning_rate": "pass learning_rate= (your optimiser's current learning rate) to MTL.backward",
}


@attrs.frozen
class SkippedStep(StepResult):
    """What :meth:`MTL.backward` returns under ``nonfinite="skip"`` for a step with a NaN/Inf loss.

    No ``.grad`` was written and the strategy saw nothing (``mtl.step()`` after it only counts the step);
    ``reason`` is the warning's text. After ``optimizer.zero_grad()`` (``set_to_none=True``, torch's
    default) an optimiser step leaves every parameter as it is; with zeroed ``.grad`` tensors momentum
    would still move them, so skip ``optimizer.step()`` on ``isinstance(result, SkippedStep)``.
    """

    reason: str = ""


def _as_module(params: Parameters) -> nn.Module:
    """A module holding ``params`` (the module itself when one is given, so its structure stays visible)."""
    if isinstance(params, nn.Module):
        return params
    holder = nn.Module()
    holder.params = nn.ParameterList(list(params))
    return holder


def _task_names(tasks: Sequence[str]) -> tuple[str, ...]:
    """``tasks`` as a tuple of distinct names; a bare string is one mistake away from one task per letter."""
    if isinstance(tasks, str):
        raise ConfigError(f"mtlx.MTL: tasks must be a sequence of task names ([{tasks!r}]), not the string {tasks!r}")
    if not isinstance(tasks, Iterable):
        raise ConfigError(f"mtlx.MTL: tasks must be a sequence of task names, got {type(tasks).__name__}")
    names = tuple(tasks)
    if not names or not all(isinstance(t, str) for t in names):
        raise ConfigError(f"mtlx.MTL: tasks must be a non-empty sequence of task names (str), got {list(names)!r}")
    if twice := sorted({t for t in names if names.count(t) > 1}):
        raise ConfigError(f"mtlx.MTL: tasks has {', '.join(map(repr, twice))} twice")
    return names


def _differences(given: Iterable[str], expected: Sequence[str]) -> str:
    """``missing: 'a'; unknown: 'b'`` between the names ``given`` and the ``expected`` ones."""
    given = list(given)
    missing = [repr(t) for t in expected if t not in given]
    unknown = [repr(t) for t in given if t not in expected]
    return f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}"


def _check_disjoint(parts: Mapping[str, nn.Module]) -> None:
    """No parameter in two parts (shared, heads[t]): each part's gradient is written by its own rule."""
    owner: dict[int, tuple[str, str]] = {}
    for part, module in parts.items():
        for name, p in module.named_parameters():
            first_part, first_name = owner.setdefault(id(p), (part, name))
            if first_part != part:
                raise ConfigError(
                    f"mtlx.MTL: parameter {first_name!r} of {first_part} is also in {part} (as {name!r}); "
                    "each parameter belongs to shared or to one head"
                )


def _check_modules(name: str, shared: Parameters, heads: Mapping[str, Parameters]) -> None:
    """A bilevel strategy evaluates the user's losses at virtual parameters by swapping them in the modules the
    loss functions call (:mod:`mtlx.virtual`): bare parameter lists cannot be swapped."""
    bare = [part for part, params in [("shared", shared), *((f"heads[{t!r}]", h) for t, h in heads.items())]
            if not isinstance(params, nn.Module)]
    if bare:
        raise ConfigError(f"mtlx.MTL: strategy {name!r} evaluates your losses at virtual parameters, which needs "
                          f"modules: pass {bare[0]} as the nn.Module your forward calls, not a list of parameters")


def _reaches(loss: torch.Tensor, edge: torch.autograd.graph.GradientEdge) -> bool:
    """Whether ``loss``'s autograd graph reads the tensor whose gradient edge is ``edge``.

    A walk of the graph's nodes from ``loss.grad_fn`` (no backward, no buffers touched) that stops
    where it meets the edge; a loss that does not read the tensor is walked whole.
    """
    root = loss.grad_fn
    if root is None:
        return False
    seen, stack = {root}, [root]
    while stack:
        for node, output_nr in stack.pop().next_functions:
            if node is None:
                continue
            if node is edge.node and output_nr == edge.output_nr:
                return True
            if node not in seen:
                seen.add(node)
                stack.append(node)
    return False


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
        heads: ``{task: parameters or module}`` (a dict or an ``nn.ModuleDict``): each task's own parameters,
            none of them shared or in another head.
        per_task_grads: ``auto``, ``loop`` or ``two-stage`` (``train.per_task_grads``).
        nonfinite: a NaN/Inf loss ``raise``s :class:`~mtlx.errors.NonFiniteLossError` (the task, step and
            every loss named, as ``mtlx run`` does), or ``skip``: a warning, ``.grad`` left untouched, and
            ``backward`` returns a :class:`SkippedStep`.
        steps_per_epoch: for strategies with an epoch hook (DWA, GradNorm): warn once when more steps than
            this pass without :meth:`end_epoch`; without it the warning comes after
            :data:`EPOCH_WARNING_STEPS` steps.
        registries: where ``name`` (and a strategy's base, Rep-MTL's) is looked up; None loads the installed
            plugins afresh for this call (``mtlx.PluginManager().registries``).
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
        nonfinite: str = "raise",
        steps_per_epoch: int | None = None,
        registries: Registries | None = None,
        **options: Any,
    ):
        self.tasks = _task_names(tasks)
        if not isinstance(heads, Mapping | nn.ModuleDict):
            raise ConfigError(f"mtlx.MTL: heads must be a mapping {{task: module or parameters}}, "
                              f"got {type(heads).__name__}")
        if set(heads) != set(self.tasks):
            raise ConfigError(f"mtlx.MTL: heads must have one entry per task {list(self.tasks)}; "
                              f"{_differences(heads, self.tasks)}")
        if per_task_grads not in METHODS:
            raise ConfigError(f"mtlx.MTL: per_task_grads must be one of {', '.join(METHODS)}, got {per_task_grads!r}")
        if nonfinite not in NONFINITE:
            raise ConfigError(f"mtlx.MTL: nonfinite must be 'raise' or 'skip', got {nonfinite!r}")
        if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
            raise ConfigError(f"mtlx.MTL: steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
        self.name = name
        self.strategy: MTOStrategy = strategy_by_name(name, options, self.tasks, registries)
        self.model = _UserModel(self.tasks, shared, heads)
        _check_disjoint({"shared": self.model.encoder, **{f"heads[{t!r}]": self.model.heads[t] for t in self.tasks}})
        if self.strategy.heldout_split is not None or self.strategy.needs_train_losses:
            _check_modules(name, shared, heads)
        self.nonfinite = nonfinite
        self.steps_per_epoch = steps_per_epoch
        # the engine's step, by construction; the State's budget is the user loop's, unused here
        self.driver = StepDriver(self.strategy, State(max_epochs=0), self.tasks,
                                 lambda: [*self.model.parameters(), *self.parameters()], per_task_grads)
        self.state = self.driver.state  # iteration (mtl.step() calls), epoch, epoch_iteration, epoch_loss_sums
        self.driver.start_epoch()
        self._last: StepContext | None = None
        self._per_epoch = self.strategy.uses_epoch_end
        self._warned_epoch = False

    iteration = property(lambda self: self.state.iteration, doc="The steps taken (``mtl.step()`` calls).")
    epoch = property(lambda self: self.state.epoch, doc="The epochs ended (``mtl.end_epoch()`` calls).")
    per_task_grads = property(lambda self: self.driver.grad_method,
                              doc="As given, or ``loop`` after a two-stage fallback (which sticks).")

    def parameters(self) -> list[nn.Parameter]:
        """The strategy's own learnable parameters (UW's log-variances): add them to your optimiser."""
        return list(self.strategy.extra_parameters())

    def backward(
        self,
        losses: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
        *,
        features: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
        loss_scale: float = 1.0,
        recompute_losses: Callable[[], Mapping[str, torch.Tensor]] | None = None,
        extra_losses: Sequence[Mapping[str, torch.Tensor] | Sequence[torch.Tensor]] = (),
        extra_features: Sequence[torch.Tensor | Mapping[str, torch.Tensor] | None] = (),
        heldout_losses: Callable[[], Mapping[str, torch.Tensor]] | None = None,
        train_losses: Callable[[], Mapping[str, torch.Tensor]] | None = None,
        learning_rate: float | None = None,
    ) -> StepResult:
        """Populate ``.grad`` of the shared, task and strategy parameters for this step (the engine's step).

        Every argument is checked before any ``.grad`` is written: each loss a scalar tensor, named by
        task (a dict in any order, or a list in task order); ``features``, when given, read by every loss
        (a walk of each loss's autograd graph until it meets ``features``, every step; its cost: README.md);
        the losses finite (``nonfinite``).

        Args:
            losses: ``{task: scalar}`` or the T scalars in task order.
            features: the shared representation Z the heads read (needed by representation-level
                strategies such as rep-mtl and graddrop; lets the others use the two-stage gradients);
                ``{task: Z_t}`` when each task reads its own input's Z.
            loss_scale: the AMP loss scale (``float(scaler.scale(torch.ones(())))``: ``get_scale()`` does not
                initialise a fresh GradScaler, whose ``step`` then fails); ``.grad`` is then scaled as
                ``scaler.scale(loss).backward()`` would leave it, so ``scaler.step(optimizer)`` unscales it.
            recompute_losses: a no-grad re-forward of the same batch, for strategies that need one
                (FAMO's ``after_step``).
            extra_losses: for a strategy drawing k batches per step (``strategy.batches_per_step``, e.g.
                MoDo, SDMGrad: 3): the losses of k - 1 further independent batches, each like ``losses``.
            extra_features: optionally, each extra batch's features (as ``features``; lets them use two-stage).
            heldout_losses: for a bilevel strategy (``strategy.heldout_split``, e.g. auto-lambda): a function
                computing ``{task: loss}`` of a held-out batch through ``shared`` and ``heads`` (the strategy runs
                it at virtual parameters, so those must be the modules the function calls); with graph.
            train_losses: for a strategy that re-runs the step's batch at virtual parameters
                (``strategy.needs_train_losses``, e.g. forum's inner steps): a function computing ``losses`` again,
                on the same batch through ``shared`` and ``heads``, with graph.
            learning_rate: your optimiser's current learning rate (auto-lambda's virtual step).

        Returns:
            The strategy's weights and diagnostics, or a :class:`SkippedStep` (``nonfinite="skip"``).
        """
        named = self._named_losses(losses)
        if loss_scale != 1.0 and self.strategy.owns_optimizer_step:
            raise ConfigError(f"{_BACKWARD}: strategy {self.name!r} "
                              f"{owned_step_conflict(self.strategy, None, loss_scaling=True)}")
        self._check_features(named, features)
        extras = self._extra_losses(extra_losses, extra_features)
        self._check_closure("heldout_losses", heldout_losses, self.strategy.heldout_split is not None,
                            "learns from a held-out batch each step", "takes no held-out batch")
        self._check_closure("train_losses", train_losses, self.strategy.needs_train_losses,
                            "re-runs your training batch at other parameters", "does not re-run the training batch")
        if recompute_losses is not None and not callable(recompute_losses):
            raise ConfigError(f"{_BACKWARD}: recompute_losses must be a function returning {{task: loss}}, "
                              f"got {type(recompute_losses).__name__}")
        for batch in [named, *extras]:
            if (skipped := self._nonfinite(batch)) is not None:
                return skipped
        step = StepContext(
            model=self.model,
            losses=named,
            representation=features,
            iteration=self.iteration,
            epoch=self.epoch,
            loss_scale=loss_scale,
            recompute_losses=torch.no_grad()(recompute_losses) if recompute_losses is not None else None,
            how_to_provide=_HOW_TO_PROVIDE,
            extra_losses=extras,
            extra_representations=list(extra_features),
            heldout_losses=heldout_losses,
            train_losses=train_losses,
            learning_rate=learning_rate,
        )
        result = self.driver.backward(step)
        self._last = step
        self.driver.record({t: float(loss.detach()) for t, loss in named.items()})
        self.state.epoch_iteration += 1
        self._warn_without_epochs()
        return result

    def _named_losses(self, losses: Any) -> dict[str, torch.Tensor]:
        """``{task: scalar tensor}`` in task order, or one line saying which task's loss is wrong."""
        if isinstance(losses, torch.Tensor):
            raise ConfigError(f"{_BACKWARD}: losses must be {{task: loss}} or the {len(self.tasks)} losses in task "
                              f"order, not one tensor of shape {tuple(losses.shape)}")
        if isinstance(losses, Mapping):
            if set(losses) != set(self.tasks):
                raise ConfigError(f"{_BACKWARD}: losses must be keyed by the tasks {list(self.tasks)}; "
                                  f"{_differences(losses, self.tasks)}")
            named = {t: losses[t] for t in self.tasks}
        elif isinstance(losses, Iterable) and not isinstance(losses, str):
            values = list(losses)
            if len(values) != len(self.tasks):
                raise ConfigError(f"{_BACKWARD}: got {len(values)} losses for {len(self.tasks)} tasks "
                                  f"{list(self.tasks)}")
            named = dict(zip(self.tasks, values, strict=True))
        else:
            raise ConfigError(f"{_BACKWARD}: losses must be {{task: loss}} or a list in task order, "
                              f"got {type(losses).__name__}")
        for t, loss in named.items():
            if not isinstance(loss, torch.Tensor):
                raise ConfigError(f"{_BACKWARD}: the loss of task {t!r} is a {type(loss).__name__}, "
                                  "expected a scalar tensor")
            if loss.dim() != 0:
                raise ConfigError(f"{_BACKWARD}: the loss of task {t!r} has shape {tuple(loss.shape)}, "
                                  "expected a scalar (reduce it, e.g. .mean())")
        return named

    def _extra_losses(self, extra_losses: Any, extra_features: Any) -> list[dict[str, torch.Tensor]]:
        """The extra batches' losses, exactly ``batches_per_step - 1`` of them, each checked as ``losses`` is."""
        wanted = self.strategy.batches_per_step - 1
        if isinstance(extra_losses, Mapping | torch.Tensor) or len(extra_losses) != wanted:
            given = "one mapping" if isinstance(extra_losses, Mapping) else f"{len(extra_losses)}"
            raise ConfigError(f"mtlx.MTL.backward: strategy {self.name!r} takes {wanted + 1} independent batches per "
                              f"step: pass extra_losses=[...] with the losses of {wanted} more batch(es) "
                              f"({{task: loss}} each), got {given}")
        if extra_features and len(extra_features) != wanted:
            raise ConfigError(f"mtlx.MTL.backward: extra_features has {len(extra_features)} entries for {wanted} "
                              "extra batch(es); pass one per entry of extra_losses, or none")
        extras = [self._named_losses(batch) for batch in extra_losses]
        for batch, z in zip(extras, extra_features, strict=False):
            self._check_features(batch, z)
        return extras

    def _check_closure(self, arg: str, given: Any, needed: bool, why: str, unneeded: str) -> None:
        """``arg`` (``heldout_losses``, ``train_losses``): a callable for a strategy that needs it (``why``), None for
        every other strategy (``unneeded``)."""
        if given is None and needed:
            raise ConfigError(f"{_BACKWARD}: strategy {self.name!r} {why}: {_HOW_TO_PROVIDE[arg]}")
        if given is not None and not needed:
            raise ConfigError(f"{_BACKWARD}: strategy {self.name!r} {unneeded}; drop {arg}=")
        if given is not None and not callable(given):
            raise ConfigError(f"{_BACKWARD}: {arg} must be a function returning {{task: loss}}, "
                              f"got {type(given).__name__}")

    def _check_features(self, losses: Mapping[str, torch.Tensor], features: Any) -> None:
        """Every loss reads ``features`` (its task's entry for ``{task: Z_t}``): what strategies read through it."""
        if features is None:
            if self.strategy.needs is Need.REPRESENTATION:
                raise ConfigError(f"{_BACKWARD}: strategy {self.name!r} works on the shared representation: "
                                  f"{_PASS_FEATURES} to MTL.backward")
            return
        if isinstance(features, Mapping):
            if set(features) != set(self.tasks):
                raise ConfigError(f"{_BACKWARD}: features {{task: Z_t}} must have one entry per task; "
                                  f"{_differences(features, self.tasks)}")
            read = dict(features)
        else:
            read = dict.fromkeys(self.tasks, features)
        for t, z in read.items():
            if not isinstance(z, torch.Tensor):
                raise ConfigError(f"{_BACKWARD}: features must be a tensor, got {type(z).__name__}; {_PASS_FEATURES}")
            if not z.requires_grad:
                raise ConfigError(f"{_BACKWARD}: features does not require grad (detached, or not computed from "
                                  f"the shared parameters); {_PASS_FEATURES}")
        edges = {id(z): torch.autograd.graph.get_gradient_edge(z) for z in read.values()}
        for t, loss in losses.items():
            if not _reaches(loss, edges[id(read[t])]):
                raise ConfigError(f"{_BACKWARD}: the loss of task {t!r} does not depend on features (a second forward, "
                                  f"or a tensor its head does not read); {_PASS_FEATURES}")

    def _nonfinite(self, losses: Mapping[str, torch.Tensor]) -> SkippedStep | None:
        """The engine's guard: a NaN/Inf loss (on any process) raises, or skips the step with a warning."""
        what = nonfinite_loss(losses)
        if what is None:
            return None
        message = nonfinite_message(self.iteration + 1, self.epoch, what, losses)
        if self.nonfinite == "raise":
            raise NonFiniteLossError(f"{message}. Lower the learning rate or pass nonfinite='skip' to mtlx.MTL.")
        warnings.warn(f"skipping {message}", RuntimeWarning, stacklevel=3)
        return SkippedStep(reason=message)

    def _warn_without_epochs(self) -> None:
        """Once: a strategy with an epoch hook that sees no end_epoch keeps its first epoch's weights for ever."""
        limit = self.steps_per_epoch or EPOCH_WARNING_STEPS
        if not self._per_epoch or self._warned_epoch or self.state.epoch_iteration <= limit:
            return
        self._warned_epoch = True
        how = (f"(steps_per_epoch={self.steps_per_epoch})" if self.steps_per_epoch else
               f"(pass steps_per_epoch= to mtlx.MTL if your epochs are longer than {EPOCH_WARNING_STEPS} steps)")
        warnings.warn(f"mtlx.MTL: strategy {self.name!r} updates once per epoch, but there was no "
                      f"mtl.end_epoch() in {self.state.epoch_iteration} steps {how}; call it at the end of each epoch",
                      UserWarning, stacklevel=3)

    def step(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """After ``optimizer.step()``: the strategy's ``after_step`` (e.g. FAMO's weight update).

        A strategy that owns the optimiser step (MTAdam) takes it here: ``mtl.step(optimizer)`` in place of
        ``optimizer.step()``, which must not be called as well (refused: the optimiser would have moments).
        """
        where, owned = "mtlx.MTL.step", self.strategy.owns_optimizer_step
        if owned and optimizer is None:
            raise ConfigError(f"{where}: strategy {self.name!r} takes the optimiser step itself: call "
                              "mtl.step(optimizer) in place of optimizer.step()")
        if not owned and optimizer is not None:
            raise ConfigError(f"{where}: strategy {self.name!r} does not take the optimiser step: call "
                              "optimizer.step(), then mtl.step() without the optimiser")
        if optimizer is not None:
            if (conflict := owned_step_conflict(self.strategy, optimizer)) is not None:
                raise ConfigError(f"{where}: strategy {self.name!r} {conflict}")
            if optimizer.state:
                raise ConfigError(f"{where}: strategy {self.name!r} takes the optimiser step itself, but the "
                                  "optimiser has stepped too: call mtl.step(optimizer) in place of optimizer.step()")
        if self._last is not None:
            self.driver.finish(self._last, optimizer)
            self._last = None
        self.state.iteration += 1

    def end_epoch(self, mean_losses: Mapping[str, float] | None = None) -> None:
        """At the end of each epoch (DWA, GradNorm): the epoch's mean task losses (tracked, unless given)."""
        self.driver.end_epoch(mean_losses)
        self.driver.next_epoch()
        self.driver.start_epoch()

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly: the strategy (named) and its state, the step/epoch counters."""
        return {
            "strategy_name": self.name,
            "strategy_class": _qualified(type(self.strategy)),
            "strategy": self.strategy.state_dict(),
            "iteration": self.state.iteration,
            "epoch": self.state.epoch,
            "epoch_sums": dict(self.state.epoch_loss_sums),
            "epoch_steps": self.state.epoch_iteration,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`; another strategy's state is refused, naming both.

        A state saved before the strategy was stored in it (no ``strategy_name``) loads when it fits.
        """
        where = "mtlx.MTL.load_state_dict"
        if "strategy" not in state:
            raise CheckpointError(f"{where}: not an mtlx.MTL state_dict (no 'strategy' entry; keys: {sorted(state)})")
        saved = state.get("strategy_class")
        if saved is not None and saved != _qualified(type(self.strategy)):
            raise CheckpointError(f"{where}: the state of strategy {state.get('strategy_name')!r} ({saved}) "
                                  f"cannot be loaded: this MTL runs {self.name!r}")
        try:
            self.strategy.load_state_dict(state["strategy"])
        except (KeyError, ValueError, TypeError, RuntimeError) as error:
            raise CheckpointError(f"{where}: the state does not fit strategy {self.name!r} "
                                  f"({type(error).__name__}: {error}); was it saved with another strategy "
                                  "or other options?") from error
        self.state.iteration = int(state["iteration"])
        self.state.epoch = int(state["epoch"])
        self.state.epoch_loss_sums = dict(state["epoch_sums"])
        self.state.epoch_iteration = int(state["epoch_steps"])


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
