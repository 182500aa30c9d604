"""Entry point of mtlx-cityscapes: registers the ``cityscapes`` and ``gta5`` datasets."""

from __future__ import annotations

import mtlx

from .cityscapes import Cityscapes
from .gta5 import GTA5


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.datasets.register("cityscapes", Cityscapes)
    registry.datasets.register("gta5", GTA5)
