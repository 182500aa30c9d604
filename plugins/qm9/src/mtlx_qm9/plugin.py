"""Entry point of mtlx-qm9: registers the ``qm9`` dataset and the ``mpnn`` graph backbone."""

from __future__ import annotations

import mtlx

from .dataset import QM9Dataset
from .mpnn import MPNN


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    registry.datasets.register("qm9", QM9Dataset)
    registry.backbones.register("mpnn", MPNN)
