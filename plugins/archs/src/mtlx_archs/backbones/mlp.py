"""Multi-layer perceptron backbone for vector data (QM9 features, flattened images)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
from torch import nn

from .base import Stage, StagedBackbone
from .weights import load_backbone_weights

__all__ = ["MLP"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def _int_tuple(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


class MLP(StagedBackbone):
    """Linear-activation layers on the flattened input: ``(*input_shape)`` -> Z ``(hidden_sizes[-1],)``."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o backbone.KEY=VALUE``.

        Attributes:
            hidden_sizes: width of each layer; the last is Z
            activation: the nonlinearity after each layer
            dropout: dropout probability after each activation (0: none)
            weights: a local file of weights (this backbone's own ``state_dict``) to start from; None: random init
        """

        hidden_sizes: tuple[int, ...] = attrs.field(
            default=(256, 256), converter=_int_tuple, validator=attrs.validators.min_len(1)
        )
        activation: str = attrs.field(default="relu", validator=attrs.validators.in_(tuple(_ACTIVATIONS)))
        dropout: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])
        weights: str | None = None

    def __init__(self, config: Config, input_shape: tuple[int, ...]):
        super().__init__()
        layers, width = [], math.prod(input_shape)
        for i, size in enumerate(config.hidden_sizes):
            block = [nn.Flatten()] if i == 0 else []
            block += [nn.Linear(width, size), _ACTIVATIONS[config.activation]()]
            if config.dropout:
                block.append(nn.Dropout(config.dropout))
            layers.append(nn.Sequential(*block))
            width = size
        self.layers = nn.Sequential(*layers)
        self.out_shape = (width,)
        self.stage_channels = config.hidden_sizes
        if config.weights:
            load_backbone_weights(self, config.weights, where="backbone 'mlp'")

    def stages(self) -> Sequence[Stage]:
        return list(self.layers)
