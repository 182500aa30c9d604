"""Pinned digits runs, one per family of the catalogue (see :mod:`mtlx_testing.pins`).

A change that moves any of these results fails here until the pin is re-recorded in the same commit
(``MTLX_UPDATE_PINS=1 pytest -k pins``), so a README table that would now show other numbers is visible.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlx_testing.pins import check_pin

PIN_FILE = Path(__file__).with_name("pins.json")

#: one strategy per family: fixed weights, learned weights, loss-history weights, a weight update after the
#: optimiser step, then the gradient methods (min-norm, projection, constrained, game-theoretic)
FAMILIES = {
    "ew": ["-s", "ew"],
    "uw": ["-s", "uw"],
    "dwa": ["-s", "dwa"],
    "famo": ["-s", "famo"],
    "mgda": ["-s", "mgda"],
    "pcgrad": ["-s", "pcgrad"],
    "cagrad": ["-s", "cagrad"],
    "nash-mtl": ["-s", "nash-mtl"],
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_pins(name: str, tmp_path: Path) -> None:
    check_pin(PIN_FILE, name, ["-d", "digits", *FAMILIES[name]], tmp_path)
