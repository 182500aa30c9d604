"""Pinned digits runs of Rep-MTL's two modes and its representation path (see :mod:`mtlx_testing.pins`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlx_testing.pins import check_pin

PIN_FILE = Path(__file__).with_name("pins.json")

SETTINGS = {
    "rep-mtl": ["-s", "rep-mtl", "-o", "strategy.estimate_every=2"],
    "rep-mtl-paper": ["-s", "rep-mtl", "--preset", "paper"],
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_pins(name: str, tmp_path: Path) -> None:
    check_pin(PIN_FILE, name, ["-d", "digits", *SETTINGS[name]], tmp_path)
