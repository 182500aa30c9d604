"""Entry point of mtlx-baselines: registers every baseline strategy by name."""

from __future__ import annotations

import mtlx

from .strategies.ew import EqualWeighting


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.strategies.register("ew", EqualWeighting)
