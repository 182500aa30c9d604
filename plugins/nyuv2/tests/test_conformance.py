"""NYUv2 passes the core's dataset conformance check on a fixture release, in both metric aggregations."""

from __future__ import annotations

import pytest

from mtlx.config import build_component_config
from mtlx_nyuv2.dataset import NYUv2
from mtlx_testing import check_dataset


@pytest.mark.parametrize("aggregation", ["global", "batch"])
def test_nyuv2_conforms(nyuv2_root, aggregation):
    config = build_component_config(NYUv2.Config, {"metric_aggregation": aggregation}, "dataset 'nyuv2'")
    # "batch" averages per-batch statistics (MTAN/Nash-MTL): its metrics depend on the batching by design
    check_dataset(NYUv2(config, nyuv2_root), batch_independent_meters=aggregation == "global")
