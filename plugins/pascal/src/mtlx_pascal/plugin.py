"""Entry point of mtlx-pascal: registers the ``pascal`` dataset."""

from __future__ import annotations

import mtlx

from .dataset import PascalContext


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.datasets.register("pascal", PascalContext)
