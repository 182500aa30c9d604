"""Baseline multi-task optimisation strategies for mtlx.

Every gradient-manipulation method is also a pure function on the ``[T, N]``
per-task gradient matrix, usable without the engine::

    d, weights = mtlx_baselines.aggregator("cagrad")(G, c=0.4)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"
__all__ = ["aggregator", "aggregator_names"]


def aggregator_names() -> list[str]:
    """Strategy names that have a pure aggregator."""
    from .plugin import STRATEGIES

    return [name for name, cls in STRATEGIES.items() if hasattr(cls, "aggregate")]


def aggregator(name: str) -> Callable[..., Any]:
    """The pure ``aggregate(G, **hyperparameters) -> (d, weights)`` of the strategy registered as ``name``."""
    from mtlx.errors import UnknownComponentError, did_you_mean

    from .plugin import STRATEGIES

    cls = STRATEGIES.get(name)
    known = ", ".join(aggregator_names())
    if cls is None:
        hint = did_you_mean(name, STRATEGIES)
        raise UnknownComponentError(f"no baseline strategy {name!r}{hint} (aggregators: {known})")
    if not hasattr(cls, "aggregate"):
        raise UnknownComponentError(f"{name!r} combines losses, not gradients: it has no aggregator ({known})")
    return cls.aggregate
