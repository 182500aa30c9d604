"""Model interfaces: backbone, task head, and the multi-task model an architecture builds.

Representation-level strategies (Rep-MTL, MGDA-UB, GradDrop) need one shared
representation ``Z``: a model that has one splits its forward into
``encode`` (input -> Z) and ``decode`` (Z -> predictions). Architectures
without a single Z (MTAN, cross-stitch) say so and only implement ``forward``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import torch
from torch import nn

from .task import TaskSpec

__all__ = ["Backbone", "BackboneFactory", "EncoderHeads", "HeadFactory", "MultiTaskModel", "TaskHead"]


class Backbone(nn.Module, ABC):
    """Shared encoder: ``forward(x) -> Z``.

    Subclasses set ``Config`` and take ``(config, input_shape)``; they set
    ``self.out_shape`` (per-sample shape of Z, ``(C, H', W')`` or ``(D,)``)
    in ``__init__`` so heads can be sized without a dummy forward.
    """

    Config: ClassVar[type]
    out_shape: tuple[int, ...]


class TaskHead(nn.Module, ABC):
    """Task-specific decoder: ``forward(Z) -> prediction``.

    Subclasses set ``Config`` and take ``(config, in_shape, task, input_shape)``;
    a dense task's prediction has the spatial size ``input_shape[1:]``.
    """

    Config: ClassVar[type]


#: ``() -> Backbone``: architectures call it once per copy they need.
BackboneFactory = Callable[[], Backbone]
#: ``(task, in_shape) -> TaskHead``.
HeadFactory = Callable[[TaskSpec, tuple[int, ...]], TaskHead]


class MultiTaskModel(nn.Module, ABC):
    """What an Architecture plugin builds.

    Subclasses set ``Config`` and take ``(config, *, tasks, make_backbone,
    make_head, input_shape)`` with ``tasks`` a mapping name -> TaskSpec.
    """

    Config: ClassVar[type]
    #: True when ``encode``/``decode`` exist and ``Z`` is shared by all tasks.
    has_shared_representation: ClassVar[bool] = False

    def __init__(self, tasks: Mapping[str, TaskSpec]):
        super().__init__()
        self.task_names: tuple[str, ...] = tuple(tasks)

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predictions for every task."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Shared representation Z (only when ``has_shared_representation``)."""
        raise NotImplementedError(f"{type(self).__name__} exposes no single shared representation")

    def decode(self, z: torch.Tensor, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Predictions of ``tasks`` (default all) from Z."""
        raise NotImplementedError(f"{type(self).__name__} exposes no single shared representation")

    @abstractmethod
    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss depends on (per-task gradients are taken w.r.t. these)."""

    @abstractmethod
    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Parameters only ``task``'s loss depends on."""


class EncoderHeads(MultiTaskModel):
    """A model ``heads[t](encoder(x))``: subclasses set ``self.encoder`` and ``self.heads`` (a ModuleDict).

    Z is the encoder's output, so every representation-level strategy applies (the test models of
    :mod:`mtlx_testing` and the user's modules that :class:`mtlx.MTL` drives).
    """

    has_shared_representation = True
    encoder: nn.Module
    heads: nn.ModuleDict

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](z) for t in (tasks or self.task_names)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())
