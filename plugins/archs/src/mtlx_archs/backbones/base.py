"""Backbones built as a chain of stages, so stage-wise architectures can tap them.

MTAN attends to every stage's output and cross-stitch mixes task copies after
every stage; both need the encoder cut into stages rather than one opaque
``forward``. A backbone of this plugin is such a chain: ``forward`` is the
composition of :meth:`StagedBackbone.stages`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence

import torch

from mtlx import Backbone

__all__ = ["Stage", "StagedBackbone", "conv_out_size"]

#: One stage of the chain: a module or a bound method taking and returning a feature map.
Stage = Callable[[torch.Tensor], torch.Tensor]


class StagedBackbone(Backbone):
    """A backbone whose forward is ``stages[-1](...stages[0](x))``.

    Subclasses set ``out_shape`` and ``stage_channels`` (channels, or width for
    vector features, after each stage) in ``__init__``.
    """

    stage_channels: tuple[int, ...]

    @abstractmethod
    def stages(self) -> Sequence[Stage]:
        """The stages in order; their composition is the backbone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages():
            x = stage(x)
        return x


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Spatial size after a convolution or pooling (PyTorch's floor formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
