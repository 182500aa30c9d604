"""The base of this plugin's architectures: the builder's call, shared part first, then one head per task.

Every architecture here takes the same keyword call from ``mtlx.build`` and
ends with a head per task; only what comes before the heads differs, so each
subclass implements just ``build_shared``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

from torch import nn

from mtlx import MultiTaskModel, TaskSpec
from mtlx.interfaces import BackboneFactory, HeadFactory

__all__ = ["Architecture"]


class Architecture(MultiTaskModel):
    """A multi-task model whose heads (``self.heads``, one per task) read what ``build_shared`` built."""

    def __init__(
        self,
        config: object,
        *,
        tasks: Mapping[str, TaskSpec],
        make_backbone: BackboneFactory,
        make_head: HeadFactory,
        input_shape: tuple[int, ...],
    ):
        super().__init__(tasks)
        in_shape = self.build_shared(config, make_backbone, input_shape)
        self.heads = nn.ModuleDict({name: make_head(spec, in_shape) for name, spec in tasks.items()})

    @abstractmethod
    def build_shared(
        self, config: object, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        """Build the modules before the heads (tasks are ``self.task_names``); return the shape each head reads."""
