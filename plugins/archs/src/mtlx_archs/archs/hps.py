"""Hard parameter sharing (Caruana 1997): one shared backbone, one head per task.

The backbone output is the single shared representation Z, so every
representation-level strategy (Rep-MTL, MGDA-UB, GradDrop) applies. For
multi-input data the engine calls ``encode`` on each task's input and
``decode(z, [task])``: the same encoder serves every input stream.
"""

from __future__ import annotations

import attrs
from torch import nn

from mtlx.interfaces import BackboneFactory, EncoderHeads

from .base import Architecture

__all__ = ["HardParameterSharing"]


class HardParameterSharing(Architecture, EncoderHeads):
    """Hard parameter sharing: Z = backbone(x), prediction_t = head_t(Z) (the encode/decode of EncoderHeads)."""

    @attrs.frozen(kw_only=True)
    class Config:
        pass

    def build_shared(
        self, config: Config, make_backbone: BackboneFactory, input_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        self.backbone = make_backbone()
        return self.backbone.out_shape

    @property
    def encoder(self) -> nn.Module:
        """The backbone, under EncoderHeads' name (the module stays ``backbone``: checkpoint keys unchanged)."""
        return self.backbone
