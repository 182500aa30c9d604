"""Shared plumbing of the gradient-manipulation strategies.

A method is a pure ``aggregate(G, ...) -> (d, weights)`` on the ``[T, N]``
per-task gradients; :class:`GradientAggregation` feeds it the gradients the
config asks for (``grad_mode``: w.r.t. the shared parameters, or w.r.t. the
shared representation Z as in LibMTL's ``rep_grad``), writes ``d`` back and
gives the task heads their gradient.

Representation mode flattens each task's full ``∂L_t/∂Z`` (``[T, B·|z|]``),
as the MGDA-UB paper and Sener's code do; LibMTL instead sums the gradients
over the batch before its solver sees them.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from mtlx import ConfigError, MTOStrategy, Need, StepContext, StepResult

from ..errors import SolverError

__all__ = [
    "GRAD_MODES",
    "GradientAggregation",
    "apply_direction",
    "at_step",
    "grad_mode_field",
    "named",
    "needs_for",
    "representation",
    "task_gradients",
]

GRAD_MODES = ("shared", "rep")


def grad_mode_field() -> Any:
    """The ``grad_mode`` option: ``shared`` (parameters, default) or ``rep`` (representation Z).

    Each ``Config`` that has it documents it in its ``Attributes:`` section, as every option.
    """
    return attrs.field(default="shared", validator=attrs.validators.in_(GRAD_MODES))


def needs_for(grad_mode: str) -> Need | None:
    return Need.REPRESENTATION if grad_mode == "rep" else None


def representation(step: StepContext, who: str) -> torch.Tensor:
    """The single shared Z of this step, or a ConfigError saying why representation mode cannot work."""
    z = step.representation
    if z is None:
        raise ConfigError(
            f"{who} with grad_mode=rep needs an architecture with one shared representation (encode/decode); "
            f"{type(step.model).__name__} exposes none: use grad_mode=shared"
        )
    if isinstance(z, dict):
        raise ConfigError(
            f"{who} with grad_mode=rep needs one Z shared by all tasks, but this multi-input dataset gives each "
            "task its own Z: use grad_mode=shared"
        )
    return z


def task_gradients(step: StepContext, grad_mode: str, who: str) -> torch.Tensor:
    """``[T, N]`` per-task gradients (fp32, unscaled): shared parameters, or the flattened ``∂L_t/∂Z``."""
    if grad_mode == "shared":
        return step.shared_grads()
    representation(step, who)
    return step.rep_grads().flatten(1).float()


def apply_direction(step: StepContext, grad_mode: str, direction: torch.Tensor) -> None:
    """Write the aggregated ``[N]`` direction into the shared parameters (through Z in ``rep`` mode)."""
    if grad_mode == "shared":
        step.set_shared_grad(direction)
        return
    z = step.representation
    assert isinstance(z, torch.Tensor)
    step.backward_representation(direction.view_as(z).to(z.dtype))


@contextmanager
def at_step(step: StepContext) -> Iterator[None]:
    """Prefix solver errors and warnings raised inside with the training step they happened at."""
    where = f"step {step.iteration} (epoch {step.epoch})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except SolverError as error:
            raise SolverError(f"{where}: {error}") from error
    for warning in caught:
        warnings.warn(f"{where}: {warning.message}", warning.category, stacklevel=3)


def named(tasks: Sequence[str], weights: torch.Tensor) -> dict[str, float]:
    return dict(zip(tasks, weights.detach().double().cpu().tolist(), strict=True))


class GradientAggregation(MTOStrategy):
    """A strategy that aggregates per-task gradients into one shared update.

    Subclasses implement :meth:`aggregate_grads`. Heads receive ``∇L_t``
    (LibMTL's convention) unless ``weighted_heads``: methods that
    backpropagate ``Σ w_t L_t`` (Nash-MTL, FairGrad, ExcessMTL) give head t
    ``w_t ∇L_t``.
    """

    weighted_heads: ClassVar[bool] = False
    #: how many ``[T, N]`` fp32 gradient matrices the state keeps (MoCo's tracked gradients, DB-MTL's buffer)
    gradient_copies: ClassVar[int] = 0

    def __init__(self, config: Any, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.grad_mode: str = getattr(config, "grad_mode", "shared")
        self.needs = needs_for(self.grad_mode)

    def state_bytes(self, shared: Sequence[nn.Parameter], others: Sequence[nn.Parameter]) -> int:
        """``gradient_copies`` matrices of the shared parameters' per-task gradients (of Z in ``rep`` mode: not
        known before the first step, and small beside the parameters, so not counted)."""
        if self.grad_mode != "shared":
            return 0
        return self.gradient_copies * len(self.tasks) * sum(p.numel() for p in shared) * 4

    @abstractmethod
    def aggregate_grads(self, grads: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """``(direction [N], weights [T])`` for this step's ``[T, N]`` gradients."""

    def backward(self, step: StepContext) -> StepResult:
        grads = task_gradients(step, self.grad_mode, type(self).__name__)
        with at_step(step):
            direction, weights = self.aggregate_grads(grads, step)
        apply_direction(step, self.grad_mode, direction)
        step.backward_heads(weights if self.weighted_heads else None)
        return StepResult(weights=named(self.tasks, weights))
