"""digits passes the core's dataset conformance check, with every task."""

from __future__ import annotations

from mtlx_digits import DigitsDataset
from mtlx_testing import check_dataset


def test_digits_conforms():
    check_dataset(DigitsDataset(DigitsDataset.Config(train_size=16, val_size=16, test_size=16, tasks="seg,depth,cls,normal")))
