"""PASCAL-Context passes the core's dataset conformance check on the fixture tree."""

from __future__ import annotations

from mtlx_pascal import PascalContext
from mtlx_testing import check_dataset


def test_pascal_conforms(pascal):
    # 1 ODS threshold instead of 99: the edge meter's boundary matching on random predictions is the cost
    check_dataset(PascalContext(PascalContext.Config(edge_thresholds=1), pascal.root))
