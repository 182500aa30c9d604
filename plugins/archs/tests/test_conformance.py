"""Every backbone passes the core's backbone conformance check (shape, gradients, determinism, state_dict)."""

from __future__ import annotations

import pytest

from mtlx.testing import check_backbone
from mtlx_archs.plugin import BACKBONES

#: small inputs each backbone accepts (the ResNets at 32x32 keep the check fast)
INPUTS = {"mlp": (11,), "digits-cnn": (1, 32, 32)}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_conforms(name):
    cls = BACKBONES[name]
    input_shape = INPUTS.get(name, (3, 32, 32))
    check_backbone(lambda: cls(cls.Config(), input_shape), input_shape)
