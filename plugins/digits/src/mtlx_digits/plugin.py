"""Entry point of mtlx-digits: registers the ``digits`` dataset."""

from __future__ import annotations

import mtlx

from .dataset import DigitsDataset


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.datasets.register("digits", DigitsDataset)
