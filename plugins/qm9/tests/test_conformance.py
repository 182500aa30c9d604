"""QM9 (graph inputs, its own collate) passes the core's dataset conformance check on real molecules."""

from __future__ import annotations

from mtlx_qm9 import QM9Dataset
from mtlx_testing import check_dataset


def test_qm9_conforms(small_source, tmp_path):
    check_dataset(QM9Dataset(QM9Dataset.Config(source_dir=str(small_source), test_size=10, val_size=10), tmp_path))
