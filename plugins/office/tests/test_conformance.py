"""Office-31 (one input stream per domain) passes the core's dataset conformance check on the fixture."""

from __future__ import annotations

from mtlx_office.dataset import Office31
from mtlx_testing import check_dataset


def test_office31_conforms(office31):
    root, _ = office31
    check_dataset(Office31(Office31.Config(), root))
