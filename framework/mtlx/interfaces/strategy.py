"""The MTOStrategy interface: how task losses become parameter gradients.

The engine does the forward pass, computes the per-task losses and hands a
:class:`StepContext` to ``strategy.backward``; the strategy populates
``.grad`` of every trainable parameter (shared, task-specific and its own
extra parameters) and returns the task weights it used. The engine never
branches on a strategy's name: what a strategy needs, it declares in
``needs`` and asks the step context for.

Gradient policy for task-specific parameters (heads): unless a strategy says
otherwise, head t receives ``∇ L_t`` (its weight only changes shared
parameters), the LibMTL convention; strategies that backpropagate a weighted
loss (Nash-MTL, FairGrad) give heads ``w_t ∇ L_t``.

Several batches per step (``batches_per_step``), a held-out batch (``heldout_split``, ``needs_train_losses``)
and owning the optimiser step (``owns_optimizer_step``): docs/plugin-guide.md, section 4.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import torch
from torch import nn

from ..distributed import all_reduce_mean
from ..errors import ConfigError
from ..gradients import flatten_grads, per_task_grads, resolve_method, write_flat_grad
from ..phases import BACKWARD, PER_TASK_GRADS, phase
from ..virtual import losses_at
from .model import MultiTaskModel

if TYPE_CHECKING:
    from ..registry import Registries

__all__ = ["LossWeighting", "MTOStrategy", "Need", "StepContext", "StepResult", "owned_step_conflict",
           "take_optimizer_step"]


class Need(enum.Enum):
    """What a strategy needs beyond the per-task losses (``needs = None``: nothing more).

    The engine and :class:`mtlx.MTL` check it before training: a model without
    a shared representation is refused for a strategy that needs one.
    """

    #: the shared representation Z (the model must expose ``encode``/``decode``)
    REPRESENTATION = "representation"


@attrs.frozen
class StepResult:
    """What ``backward`` returns: task weights (None if none apply) and scalars to log."""

    weights: Mapping[str, float] | None = None
    diagnostics: Mapping[str, float] = attrs.field(factory=dict)


@attrs.define(eq=False)
class StepContext:
    """One training step, as a strategy sees it.

    Attributes:
        model: the multi-task model (unwrapped from DDP).
        losses: ``{task: scalar loss}`` in task order, graph attached (after the
            engine's loss transform, e.g. ``log``).
        representation: Z when captured (``Need.REPRESENTATION`` or a model
            with a shared representation), ``{task: Z_t}`` for multi-input data.
        iteration: global optimiser step (0-based) about to be taken.
        epoch: current epoch (0-based).
        loss_scale: the AMP loss scale (1.0 without fp16 scaling); ``.grad``
            holds scaled gradients, which the engine unscales before stepping.
        average_across_processes: all-reduce (mean) used on per-task gradients
            under DDP so that the update is that of the global batch (the identity on one process).
        recompute_losses: re-runs the forward on the same batch without grad
            (for ``after_step`` of methods such as FAMO).
        grad_method: how :meth:`shared_grads` computes the per-task gradients; set to
            ``loop`` when two-stage turns out unavailable for the graph, and the
            engine keeps that choice for the following steps
            (``train.per_task_grads``: ``auto``, ``loop`` or ``two-stage``, mtlx.gradients).
        extra_losses: the losses of the step's extra batches 1..k-1 (``batches_per_step = k``), each
            ``{task: scalar loss}`` like ``losses`` (batch 0), graph attached.
        extra_representations: Z of each extra batch when captured (as ``representation``), else empty.
        heldout_losses: the forward of the step's held-out batch (``strategy.heldout_split``): a closure giving
            ``{task: scalar loss}`` with graph; evaluate it at other parameters with :meth:`losses_at`.
        train_losses: the forward of the step's own batch again (``strategy.needs_train_losses``): a closure giving
            ``losses`` anew, with graph; evaluate it at other parameters with :meth:`losses_at`.
        learning_rate: the optimiser's current learning rate (the engine's first parameter group), for a
            strategy that takes a virtual step as the optimiser would; None where the caller does not know it.
        how_to_provide: ``{field: how}``: how the caller of ``strategy.backward`` lets a strategy have an
            optional field it finds unset (``mtlx.MTL``: "pass recompute_losses= ... to MTL.backward"), so that
            :meth:`missing` speaks of the caller's own arguments.
    """

    model: MultiTaskModel
    losses: dict[str, torch.Tensor]
    representation: torch.Tensor | dict[str, torch.Tensor] | None = None
    iteration: int = 0
    epoch: int = 0
    loss_scale: float = 1.0
    average_across_processes: Callable[[torch.Tensor], torch.Tensor] = all_reduce_mean
    recompute_losses: Callable[[], Mapping[str, torch.Tensor]] | None = None
    grad_method: str = "auto"
    how_to_provide: Mapping[str, str] = attrs.field(factory=dict)
    extra_losses: Sequence[dict[str, torch.Tensor]] = ()
    extra_representations: Sequence[torch.Tensor | dict[str, torch.Tensor] | None] = ()
    heldout_losses: Callable[[], Mapping[str, torch.Tensor]] | None = None
    train_losses: Callable[[], Mapping[str, torch.Tensor]] | None = None
    learning_rate: float | None = None
    _shared_grads: dict[int, torch.Tensor] = attrs.field(factory=dict, init=False)  # batch -> [T, P]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.losses)

    def missing(self, field: str, needed_by: str) -> ConfigError:
        """The error for ``needed_by`` (a strategy) finding ``field`` unset: one line saying how to provide it."""
        how = self.how_to_provide.get(field, f"set StepContext.{field} where the step is built")
        return ConfigError(f"{needed_by} needs the step's {field}: {how}")

    @property
    def num_batches(self) -> int:
        """How many batches this step has: 1 plus the extra ones."""
        return 1 + len(self.extra_losses)

    def batch_losses(self, batch: int = 0) -> dict[str, torch.Tensor]:
        """``{task: loss}`` of batch ``batch`` (0: the step's own ``losses``, j >= 1: ``extra_losses[j - 1]``)."""
        if batch == 0:
            return self.losses
        if not 0 < batch < self.num_batches:
            raise self.missing("extra_losses", f"batch {batch} of a step with {self.num_batches} batch(es)")
        return self.extra_losses[batch - 1]

    def loss_vector(self, batch: int = 0) -> torch.Tensor:
        """The losses stacked as ``[T]`` in task order (for weighting them; per-task gradients never go through it)."""
        losses = self.batch_losses(batch)
        return torch.stack([losses[t] for t in self.tasks])

    def scaled_losses(self, batch: int = 0) -> list[torch.Tensor]:
        """Each task's own loss times the AMP loss scale, in task order: what per-task gradients start from."""
        scale, losses = self.loss_scale, self.batch_losses(batch)
        return [losses[t] * scale if scale != 1.0 else losses[t] for t in self.tasks]

    def losses_at(self, compute: Callable[[], Mapping[str, torch.Tensor]],
                  params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``compute()`` (``heldout_losses``, ``train_losses``) with the model's parameters named in ``params``
        replaced: one forward, differentiable w.r.t. ``params``, the model and its buffers untouched."""
        return losses_at(self.model, compute, params)

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.shared_parameters() if p.requires_grad]

    def task_parameters(self) -> list[nn.Parameter]:
        return [p for t in self.tasks for p in self.model.task_parameters(t) if p.requires_grad]

    # -- backward helpers -------------------------------------------------
    # Profiler labels (mtlx.phases): the backward passes and gradient writes run under ``mtlx/backward``,
    # the per-task gradients under ``mtlx/per-task-grads``; the rest of strategy.backward is the strategy's own.
    def backward(
        self, loss: torch.Tensor, inputs: Sequence[torch.Tensor] | None = None, *, retain_graph: bool = False
    ) -> None:
        """``loss.backward()`` with the AMP loss scale applied; optionally only into ``inputs``.

        As in torch, the pass frees the graph's buffers as it goes unless ``retain_graph``: a
        step's last backward should free them (a retained graph costs a few per cent of a step).
        """
        with phase(BACKWARD):
            scaled = loss * self.loss_scale if self.loss_scale != 1.0 else loss
            if inputs is None or (inputs := list(inputs)):  # an empty inputs list: nothing to populate
                torch.autograd.backward(scaled, inputs=inputs, retain_graph=retain_graph)

    def backward_heads(self, weights: torch.Tensor | None = None, *, retain_graph: bool = False) -> None:
        """Populate the task-specific parameters' grads with ``∇ Σ_t w_t L_t`` (w = 1 by default).

        With extra batches, ``L_t`` is task t's loss averaged over the step's batches.
        Usually a step's last backward, so it frees the graph unless ``retain_graph``.
        """
        losses = torch.stack([self.loss_vector(j) for j in range(self.num_batches)]).mean(0)
        total = losses.sum() if weights is None else (weights.detach().to(losses) * losses).sum()
        self.backward(total, inputs=self.task_parameters(), retain_graph=retain_graph)  # labelled mtlx/backward

    def shared_grads(self, batch: int = 0) -> torch.Tensor:
        """Per-task gradients w.r.t. the shared parameters, ``[T, P]`` fp32, unscaled, of batch ``batch``.

        Computed once per step and batch (cached), each task from its own loss (each head
        traversed once), by ``grad_method``, and averaged across processes under DDP.
        """
        cached = self._shared_grads.get(batch)
        if cached is None:
            with phase(PER_TASK_GRADS):  # the flattening copies [T, P]: part of the cost
                # scaled like the AMP backward (no fp16 underflow), then unscaled in fp32
                losses = self.scaled_losses(batch)
                grads = per_task_grads(
                    losses, self.shared_parameters(), through=self._two_stage_through(batch), on_fallback=self._use_loop
                )
                flat = self._unscaled(flatten_grads(grads).float())
                cached = self._shared_grads[batch] = self.average_across_processes(flat)
        return cached

    def _two_stage_through(self, batch: int = 0) -> torch.Tensor | None:
        """Z when the two-stage method applies (one Z shared by all tasks), else None (the loop)."""
        extra = self.extra_representations
        z = self.representation if batch == 0 else (extra[batch - 1] if batch <= len(extra) else None)
        if not isinstance(z, torch.Tensor) or resolve_method(self.grad_method, z.device) != "two-stage":
            return None
        return z

    def _use_loop(self) -> None:
        """Two-stage is unavailable for this model's graph: the loop from now on (the engine keeps it)."""
        self.grad_method = "loop"

    def _unscaled(self, grads: torch.Tensor) -> torch.Tensor:
        """``grads / loss_scale``, without copying a [T, P] matrix when there is no scale."""
        return grads if self.loss_scale == 1.0 else grads / self.loss_scale

    def set_shared_grad(self, direction: torch.Tensor) -> None:
        """Write a ``[P]`` update direction (unscaled) into the shared parameters' ``.grad``."""
        with phase(BACKWARD):
            scaled = direction * self.loss_scale if self.loss_scale != 1.0 else direction  # no [P] copy unscaled
            write_flat_grad(self.shared_parameters(), scaled)

    def rep_grads(self, create_graph: bool = False) -> torch.Tensor:
        """Per-task gradients w.r.t. the representation, ``[T, *Z.shape]`` (fp32, unscaled).

        For multi-input data row t is ``∂L_t/∂Z_t`` (each task's own Z).
        """
        z = self.representation
        if z is None:
            raise RuntimeError("this step has no captured representation; declare Need.REPRESENTATION")
        with phase(PER_TASK_GRADS):
            losses = self.scaled_losses()
            if isinstance(z, torch.Tensor):
                (grads,) = per_task_grads(losses, [z], create_graph=create_graph)
                return self._unscaled(grads.float())
            rows = [per_task_grads([loss], [z[t]], create_graph=create_graph)[0][0] for t, loss in zip(self.tasks, losses, strict=True)]
            return self._unscaled(torch.stack(rows).float())

    def backward_representation(self, grad: torch.Tensor) -> None:
        """Backpropagate a gradient on Z (``[*Z.shape]``, or ``[T, *Z_t.shape]`` for multi-input) into the encoder."""
        z = self.representation
        with phase(BACKWARD):
            if isinstance(z, torch.Tensor):
                torch.autograd.backward(z, grad * self.loss_scale, retain_graph=True)
            else:
                assert z is not None
                zs = [z[t] for t in self.tasks]
                torch.autograd.backward(zs, [g * self.loss_scale for g in grad], retain_graph=True)


class MTOStrategy(ABC):
    """A multi-task optimisation strategy.

    Subclasses set ``Config`` (an attrs class; its fields are the strategy's
    options, ``-o strategy.<field>=...``) and ``needs``, take
    ``(config, *, tasks)`` in ``__init__`` and implement :meth:`backward`.
    Everything that must survive a resume lives in :meth:`state_dict`.
    """

    Config: ClassVar[type]
    needs: ClassVar[Need | None] = None
    #: independent mini-batches per step (k > 1: the engine and ``mtlx.MTL`` supply the k - 1 extra ones
    #: as ``StepContext.extra_losses``; an epoch has ``len(loader) // k`` steps)
    batches_per_step: ClassVar[int] = 1
    #: the split a bilevel strategy draws one held-out batch of per step (``StepContext.heldout_losses``);
    #: None: none. A class or an instance attribute (a config option)
    heldout_split: str | None = None
    #: whether the strategy re-runs the step's own batch with graph (``StepContext.train_losses``, e.g. at
    #: virtual parameters): the engine and ``mtlx.MTL`` supply that forward only to a strategy that sets it
    needs_train_losses: ClassVar[bool] = False
    #: the optimiser classes whose step the strategy takes itself (MTAdam: Adam, AdamW); empty: it does not.
    #: Non-empty: :meth:`optimizer_step` runs in place of ``optimizer.step()``; fp16 loss scaling, gradient
    #: clipping and other optimisers are refused before training (:func:`owned_step_conflict`)
    owns_optimizer_step: ClassVar[tuple[type[torch.optim.Optimizer], ...]] = ()
    #: named option sets for ``--preset`` (``{"paper": {"strategy.<option>": value}}``), applied with the
    #: dataset's preset of the same name
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, config: Any, *, tasks: Sequence[str]):
        self.config = config
        self.tasks = tuple(tasks)

    @classmethod
    def example_options(cls, tasks: Sequence[str]) -> dict[str, Any]:
        """Options that build the strategy for ``tasks`` where its defaults cannot (a required option, such as
        ``fixed``'s weights); the compatibility matrix builds every strategy with them. Empty by default."""
        return {}

    @classmethod
    def from_registries(cls, config: Any, *, tasks: Sequence[str], registries: Registries) -> MTOStrategy:
        """Build from the registries of the run: a strategy that wraps another component by name
        (Rep-MTL's base weighting) overrides this to look it up there, never in a global manager."""
        return cls(config, tasks=tasks)

    @abstractmethod
    def backward(self, step: StepContext) -> StepResult:
        """Populate ``.grad`` for this step; return weights and diagnostics."""

    def extra_parameters(self) -> Iterable[nn.Parameter]:
        """Learnable parameters of the strategy itself (e.g. UW log-variances).

        The engine optimises them in their own parameter group without weight decay.
        """
        return ()

    def state_bytes(self, shared: Sequence[nn.Parameter], others: Sequence[nn.Parameter]) -> int:
        """About the bytes of per-parameter state this strategy checkpoints (MTAdam's moments, MoCo's per-task
        gradients), for ``mtlx run``'s start-up check that a checkpoint fits on the disk; 0: none worth counting."""
        return 0

    def optimizer_step(self, step: StepContext, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser step of a strategy that owns it (``owns_optimizer_step``), after ``backward`` and the DDP
        sync of ``.grad``: update every parameter of ``optimizer``'s param groups, reading their ``lr``."""
        raise NotImplementedError(f"{type(self).__name__} sets owns_optimizer_step but has no optimizer_step")

    def after_step(self, step: StepContext) -> None:
        """Called after the optimiser step (e.g. FAMO's logit update)."""

    def on_epoch_end(self, epoch: int, mean_losses: Mapping[str, float]) -> None:
        """Called at the end of every training epoch with the epoch's mean task losses."""

    @property
    def uses_epoch_end(self) -> bool:
        """Whether :meth:`on_epoch_end` does anything (DWA, GradNorm): ``mtlx.MTL`` warns when a loop never calls it."""
        return type(self).on_epoch_end is not MTOStrategy.on_epoch_end

    def state_dict(self) -> dict[str, Any]:
        """Cross-step state (tensors and plain values) for exact resume."""
        return {"extra_parameters": [p.detach().clone() for p in self.extra_parameters()]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state.get("extra_parameters", [])
        params = list(self.extra_parameters())
        if len(saved) != len(params):
            raise ValueError(f"{type(self).__name__}: checkpoint has {len(saved)} extra parameters, strategy has {len(params)}")
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)


def owned_step_conflict(strategy: MTOStrategy, optimizer: torch.optim.Optimizer | None, *,
                        loss_scaling: bool = False, clipping: bool = False) -> str | None:
    """Why a strategy that owns the optimiser step cannot take it in this run (None: it can), as the end of a line
    (``optimizer`` None: not known yet).

    It steps from its own per-task state, so it stands in only for the optimisers it names; an fp16 GradScaler
    (which skips or unscales ``optimizer.step()``) and clipping of ``.grad`` would not act on its update.
    """
    owned = strategy.owns_optimizer_step
    if not owned:
        return None
    if optimizer is not None and not isinstance(optimizer, owned):
        names = " or ".join(cls.__name__ for cls in owned)
        return f"takes the optimiser step itself in place of {names}, not {type(optimizer).__name__}: use {names}"
    if loss_scaling:
        return ("takes the optimiser step itself, which fp16 loss scaling (GradScaler) cannot unscale or skip: "
                "train in fp32 or bf16")
    if clipping:
        return ("takes the optimiser step itself from per-task gradients, which clipping .grad does not change: "
                "unset train.max_grad_norm")
    return None


def take_optimizer_step(strategy: MTOStrategy, step: StepContext, optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, or for a strategy that owns the step its :meth:`~MTOStrategy.optimizer_step`.

    The optimiser's own ``step()`` then runs with every ``.grad`` hidden (restored after): Adam and AdamW skip
    parameters without a gradient, so it changes nothing, but its hooks run and an LR scheduler sees the step.
    """
    if not strategy.owns_optimizer_step:
        optimizer.step()
        return
    strategy.optimizer_step(step, optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grads = [p.grad for p in params]
    try:
        for p in params:
            p.grad = None
        optimizer.step()
    finally:
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad


class LossWeighting(MTOStrategy):
    """A strategy that only combines the losses into one scalar (EW, UW, DWA, ...).

    Implement :meth:`combine`; ``backward`` is one backward pass of its result.
    Other strategies (Rep-MTL) compose with any loss weighting through ``combine``.
    """

    @abstractmethod
    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(total_loss, weights)`` for the ``[T]`` loss vector; weights are for logging."""

    def backward(self, step: StepContext) -> StepResult:
        total, weights = self.combine(step.loss_vector(), step)
        step.backward(total)
        return StepResult(weights=dict(zip(self.tasks, weights.detach().tolist(), strict=True)))
