"""A self-contained test plugin: ``--plugin mtlx_testing.plugin`` adds toy components.

It lets the core's own tests (and plugin authors) run the whole CLI without
any first-party plugin installed: dataset ``toy`` (random per-pixel data with a
stored baseline), architecture ``toy`` (:class:`~mtlx_testing.ToyModel`),
backbone/head placeholders it ignores, and strategy ``toy-weighted``
(fixed weights 1, 2, 3, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

from mtlx import hookimpl
from mtlx.interfaces import Backbone, Dataset, LossWeighting, StepContext, TaskHead, TaskSpec

from .toy import ToyModel, toy_batch, toy_tasks

__all__ = ["ToyArch", "ToyDataset", "ToyWeighted"]


class ToyDataset(Dataset):
    """Random per-pixel data: classification and regression tasks on 6x6 inputs."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o dataset.KEY=VALUE``.

        Attributes:
            num_tasks: tasks, alternating per-pixel classification and regression (``seg0``, ``reg1``, ...).
            size: samples per split.
            seed: seed of the data (each split draws its own).
        """

        num_tasks: int = attrs.field(default=2, validator=attrs.validators.ge(1))
        size: int = attrs.field(default=16, validator=attrs.validators.ge(1))
        seed: int = 0

    recommended: Mapping[str, Any] = {
        "arch.name": "toy", "backbone.name": "toy", "head.name": "toy", "train.epochs": 2, "train.batch_size": 4,
    }
    presets = {"fast": {"train.epochs": 1}}

    def __init__(self, config: Config, root: str | None):
        self.config = config
        self._tasks = toy_tasks(config.num_tasks)

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return self._tasks

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, 6, 6)

    def split(self, name: str) -> torch.utils.data.Dataset:
        offset = {"train": 0, "val": 1, "test": 2}[name]
        x, targets = toy_batch(self._tasks, batch_size=self.config.size, seed=self.config.seed * 3 + offset)
        return torch.utils.data.StackDataset(x, torch.utils.data.StackDataset(**targets))  # (x[i], {task: y[i]})

    def baseline(self) -> Mapping[str, Mapping[str, float]]:
        return {"seg0": {"acc": 0.3}, "reg1": {"mae": 1.0}}


class _Unused(Backbone, TaskHead):
    """Placeholder backbone and head: the toy architecture builds its own encoder and heads."""

    @attrs.frozen
    class Config:
        pass


class ToyArch(ToyModel):
    """ToyModel as an architecture plugin (ignores the backbone and head factories)."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o arch.KEY=VALUE``.

        Attributes:
            channels: channels of Z (the encoder's output).
        """

        channels: int = 8

    def __init__(self, config: Config, *, tasks: Mapping[str, TaskSpec], make_backbone: Any, make_head: Any,
                 input_shape: tuple[int, ...]):
        super().__init__(tasks, in_channels=input_shape[0], channels=config.channels)


class ToyWeighted(LossWeighting):
    """Fixed weights 1, 2, 3, ... (a non-uniform loss weighting for tests)."""

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    def combine(self, losses: torch.Tensor, step: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.arange(1, len(losses) + 1, dtype=losses.dtype, device=losses.device)
        return (weights * losses).sum(), weights


@hookimpl
def mtlx_register(registry: Any) -> None:
    registry.datasets.register("toy", ToyDataset)
    registry.archs.register("toy", ToyArch)
    registry.backbones.register("toy", _Unused)
    registry.heads.register("toy", _Unused)
    registry.strategies.register("toy-weighted", ToyWeighted)
