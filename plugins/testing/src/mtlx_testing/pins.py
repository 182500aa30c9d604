"""Pinned short runs: a change that moves a strategy's results must update its pin in the same commit.

The README tables are regenerated from committed run records; nothing there shows when today's code would
give other numbers. A pin is a few steps of a real ``mtlx run`` whose final epoch losses and test metrics are
stored beside the tests. When a change moves them, the pin test fails and says to re-record with
``MTLX_UPDATE_PINS=1 pytest -k pins`` — so the commit that moves a result also shows it moved, and the
tables that show it are due for regeneration.

Pins are exact only on the build they were recorded with (the same torch release, on the CPU): the file
records it, and elsewhere the pin test skips saying so.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mtlx.checkpoint import atomic_write_text

from .cli import invoke_cli

__all__ = ["PIN_ARGS", "check_pin", "pinned_values"]

#: every pinned run: a few steps of one epoch on tiny splits, one thread, quiet
PIN_ARGS = (
    "--epochs", "1", "--threads", "1", "-q", "--device", "cpu",
    "-o", "train.max_steps=6", "-o", "dataset.train_size=192", "-o", "dataset.val_size=32",
    "-o", "dataset.test_size=32",
)
#: relative tolerance: far below any change of method, above the last-bit differences between CPUs
RTOL = 1e-6
UPDATE_ENV = "MTLX_UPDATE_PINS"


def _build() -> str:
    return f"torch {torch.__version__.split('+')[0]} cpu"


def pinned_values(run_dir: Path) -> dict[str, float]:
    """The run's last epoch mean training losses and its test metrics, flattened to ``name: value``."""
    results = json.loads((run_dir / "results.json").read_text())
    values = {f"test.{task}.{m}": float(v) for task, ms in results["test"].items() for m, v in ms.items()}
    epochs = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["event"] == "epoch"]
    values.update({f"loss.{task}": float(v) for task, v in epochs[-1]["mean_losses"].items()})
    return values


def _differences(pinned: dict[str, float], measured: dict[str, float]) -> list[str]:
    if set(pinned) != set(measured):
        return [f"the values differ: pinned {sorted(pinned)}, measured {sorted(measured)}"]
    return [
        f"{key}: pinned {pinned[key]!r}, now {measured[key]!r}"
        for key in sorted(pinned)
        if not math.isclose(pinned[key], measured[key], rel_tol=RTOL, abs_tol=1e-12)
    ]


def check_pin(pin_file: Path, name: str, args: Sequence[str], out: Path) -> None:
    """Run ``mtlx run ARGS`` (plus :data:`PIN_ARGS`) and compare it with the pin ``name`` in ``pin_file``.

    Raises AssertionError naming every value that moved; with ``MTLX_UPDATE_PINS=1`` records the new values
    instead. Calls ``pytest.skip`` on a build other than the pin file's.
    """
    import pytest

    pins: dict[str, Any] = json.loads(pin_file.read_text()) if pin_file.exists() else {"build": _build(), "pins": {}}
    updating = os.environ.get(UPDATE_ENV) == "1"
    if pins["build"] != _build() and not updating:
        pytest.skip(f"pins are exact on the build they were recorded with ({pins['build']}); this is {_build()}")
    run_dir = out / name
    result = invoke_cli("run", *args, *PIN_ARGS, "--out", run_dir)
    assert result.exit_code == 0, result.output
    measured = pinned_values(run_dir)
    if updating:
        pins["build"] = _build()
        pins["pins"][name] = {"args": list(args), "values": measured}
        atomic_write_text(pin_file, json.dumps(pins, indent=1, sort_keys=True) + "\n")
        return
    assert name in pins["pins"], f"no pin {name!r} in {pin_file}: record it with {UPDATE_ENV}=1 pytest -k pins"
    pin = pins["pins"][name]
    assert pin["args"] == list(args), f"pin {name!r} was recorded with {pin['args']}; re-record it"
    moved = _differences(pin["values"], measured)
    assert not moved, (
        f"pin {name!r} ({' '.join(args)}) moved — if intended, re-record with {UPDATE_ENV}=1 pytest -k pins "
        "in the same commit and regenerate the README tables that show it:\n  " + "\n  ".join(moved)
    )
