"""Entry point of mtlx-repmtl: registers the ``rep-mtl`` strategy."""

from __future__ import annotations

import mtlx

from .strategy import RepMTL


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.strategies.register("rep-mtl", RepMTL)
