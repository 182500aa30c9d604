"""Entry point of mtlx-nyuv2: registers the ``nyuv2`` dataset."""

from __future__ import annotations

import mtlx

from .dataset import NYUv2


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.datasets.register("nyuv2", NYUv2)
