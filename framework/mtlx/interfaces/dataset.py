"""The Dataset interface: tasks, splits and samples.

A dataset plugin turns files on disk into samples ``(input, {task: target})``.
Multi-input datasets (Office-31: one domain per task) return one torch
dataset per task instead, whose samples are ``(input, target)``; the engine
zips their loaders so that a batch is ``({task: input}, {task: target})``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import torch.utils.data

from ..errors import did_you_mean
from .task import TaskSpec

__all__ = ["Dataset", "task_subset_field"]


def task_subset_field(dataset: str, available: Sequence[str], default: Sequence[str] | None = None) -> Any:
    """An attrs field for a ``tasks`` option: a subset of ``available``, default all of them.

    Accepts ``"seg,depth"`` (what ``-o dataset.tasks=seg,depth`` gives) or a list
    of names; a single task gives the runs behind single-task baselines.
    """
    names = tuple(available)
    hint = f"e.g. -o dataset.tasks={','.join(names[:2])}"

    def convert(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(name, str) for name in value):
            raise TypeError(f"dataset {dataset}: tasks must be task names, got {value!r} ({hint})")
        return tuple(value)

    def check(_instance: Any, _attribute: Any, value: tuple[str, ...]) -> None:
        if not value:
            raise ValueError(f"dataset {dataset}: tasks is empty; choose from {', '.join(names)} ({hint})")
        for name in value:
            if name not in names:
                raise ValueError(
                    f"dataset {dataset}: unknown task {name!r}{did_you_mean(name, names)} "
                    f"(available: {', '.join(names)})"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"dataset {dataset}: task listed twice in {','.join(value)}")

    return attrs.field(default=tuple(default if default is not None else names), converter=convert, validator=check)


class Dataset(ABC):
    """A multi-task dataset.

    Subclasses set ``Config`` (an attrs class of their options, filled from
    the ``[dataset]`` config section and ``-o dataset.key=value``) and take
    ``(config, root)`` in ``__init__``; ``root`` is ``--data-root`` or
    ``$MTLX_DATA/<name>`` (None for datasets that need no files).

    Class attributes:
        recommended: run-config defaults in ``-o`` form (``{"train.epochs": 8,
            "backbone.name": "resnet18"}``) applied unless the user set them.
        presets: named override sets (``{"paper": {...}}``) for ``--preset``.
        multi_input: True when every task has its own input stream.
    """

    Config: ClassVar[type]
    recommended: ClassVar[Mapping[str, Any]] = {}
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    multi_input: ClassVar[bool] = False

    @property
    @abstractmethod
    def tasks(self) -> Mapping[str, TaskSpec]:
        """The tasks in a fixed order (the order of losses and weights)."""

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (``(C, H, W)`` or ``(D,)``) as fed to the model."""

    @property
    def splits(self) -> tuple[str, ...]:
        """Available split names; ``train`` and one of ``val``/``test`` at least."""
        return ("train", "val", "test")

    @abstractmethod
    def split(self, name: str) -> torch.utils.data.Dataset | Mapping[str, torch.utils.data.Dataset]:
        """Return the torch dataset of split ``name`` (one per task if multi-input).

        Raises :class:`mtlx.errors.DataError` naming the file for missing or
        malformed data, and :class:`mtlx.errors.ConfigError` for an unknown split.
        """

    def baseline(self) -> Mapping[str, Mapping[str, float]] | None:
        """Single-task results ``{task: {metric: value}}`` for Delta_m, or None."""
        return None

    def collate(self, samples: list[Any]) -> Any:
        """Batch samples; the default stacks tensors like torch's default collate."""
        return torch.utils.data.default_collate(samples)
