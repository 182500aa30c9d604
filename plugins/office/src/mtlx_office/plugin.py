"""Entry point of mtlx-office: registers the ``office-31`` and ``office-home`` datasets."""

from __future__ import annotations

import mtlx

from .dataset import Office31, OfficeHome


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.datasets.register("office-31", Office31)
    registry.datasets.register("office-home", OfficeHome)
