"""Each strategy trains the ``digits`` dataset for a few steps through ``mtlx run`` on the CPU.

FAMO (after_step re-forward) and Nash-MTL (per-task gradients, weighted
heads) run by default; the full catalogue, and resumed runs of the stateful
strategies against uninterrupted ones, are ``-m slow`` (about 2 s per run
after a one-off ~20 s start).
"""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from mtlx.cli import main
from mtlx_baselines.plugin import STRATEGIES

FAST = ("famo", "nash-mtl")
TINY = ["-o", "dataset.train_size=64", "-o", "dataset.val_size=32", "-o", "dataset.test_size=32"]
#: options without a default (fixed: a weight for every digits task)
REQUIRED = {"fixed": ["-o", "strategy.weights=seg:1,depth:0.5,cls:2"]}


def params():
    for name in STRATEGIES:
        yield pytest.param(name, marks=() if name in FAST else pytest.mark.slow, id=name)


@pytest.mark.parametrize("name", params())
def test_trains_digits_for_a_few_steps(name, tmp_path):
    out = tmp_path / name
    args = ["run", "--strategy", name, "--dataset", "digits", "--device", "cpu", "--max-steps", "3",
            "--batch-size", "16", "--seed", "0", "--quiet", "--out", str(out), *TINY, *REQUIRED.get(name, [])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    results = json.loads((out / "results.json").read_text())
    assert results["strategy"] == name and results["steps"] == 3
    values = [v for task in results["test"].values() for v in task.values()]
    assert values and all(math.isfinite(v) for v in values)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["uw", "dwa", "rlw", "gradnorm", "pcgrad", "gradvac", "nash-mtl", "db-mtl", "famo",
                                  "stch", "moco", "excess-mtl", "metabalance", "ldc-mtl"])
def test_resumed_run_matches_the_uninterrupted_one(name, tmp_path):
    """5 steps (past an epoch of 4) in one go equal 2 steps + ``--resume`` to 5: the strategy state round-trips."""
    common = ["--strategy", name, "--dataset", "digits", "--device", "cpu", "--batch-size", "16", "--seed", "0",
              "--quiet", *TINY]
    runner = CliRunner()
    assert runner.invoke(main, ["run", *common, "--max-steps", "5", "--out", str(tmp_path / "full")]).exit_code == 0
    assert runner.invoke(main, ["run", *common, "--max-steps", "2", "--out", str(tmp_path / "part")]).exit_code == 0
    resumed = runner.invoke(main, ["run", "--resume", str(tmp_path / "part"), "--max-steps", "5", "--quiet"])
    assert resumed.exit_code == 0, f"{resumed.output}\n{resumed.exception!r}"
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    part = json.loads((tmp_path / "part" / "results.json").read_text())
    assert part["steps"] == full["steps"] == 5
    assert part["test"] == full["test"]
