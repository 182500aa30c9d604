"""Cityscapes and GTA5 pass the core's dataset conformance check on fixture releases."""

from __future__ import annotations

from mtlx_cityscapes import GTA5, Cityscapes
from mtlx_testing import check_dataset


def test_cityscapes_conforms(cityscapes_root):
    check_dataset(Cityscapes(Cityscapes.Config(), cityscapes_root))


def test_gta5_conforms(gta5_root, cityscapes_root):
    check_dataset(GTA5(GTA5.Config(cityscapes_root=str(cityscapes_root)), gta5_root))
