"""Resume records exactly what ran: the experiment cannot change, the budget can, and the record says so."""

from __future__ import annotations

import json
import tomllib

import pytest

RUN = ("run", "-d", "toy", "-s", "toy-weighted", "-q")


@pytest.fixture
def stopped(cli, tmp_path):
    """A run stopped by --max-steps after 6 of its 8 steps."""
    out = tmp_path / "run"
    assert cli(*RUN, "--epochs", "2", "--max-steps", "6", "--out", str(out)).exit_code == 0
    return out


def _files(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("-s", "ew"), "strategy.name ('toy-weighted' -> 'ew')"),
        (("-o", "train.lr=0.5"), "train.lr (0.001 -> 0.5)"),
        (("--seed", "3"), "train.seed (0 -> 3)"),
        (("-o", "arch.channels=4", "-o", "train.optimizer=sgd"), "arch.channels (8 -> 4), train.optimizer"),
    ],
)
def test_options_that_define_the_experiment_cannot_change(cli, stopped, args, named):
    before = _files(stopped)
    result = cli("run", "--resume", str(stopped), *args)
    assert result.exit_code == 2, result.output
    assert "cannot resume" in result.output and named in result.output
    assert "Traceback" not in result.output
    assert _files(stopped) == before


def test_fewer_epochs_and_a_preset_are_refused(cli, stopped):
    assert "epochs may only grow" in cli("run", "--resume", str(stopped), "--epochs", "1").output
    result = cli("run", "--resume", str(stopped), "--preset", "paper")
    assert result.exit_code == 2 and "--preset defines the experiment" in result.output


def test_budget_changes_are_recorded_in_config_and_history(cli, stopped):
    result = cli("run", "--resume", str(stopped), "--max-steps", "7", "-o", "train.log_every=2")
    assert result.exit_code == 0, result.output
    config = tomllib.loads((stopped / "config.toml").read_text())
    assert config["train"]["max_steps"] == 7 and config["train"]["log_every"] == 2
    (record,) = [json.loads(line) for line in (stopped / "resumes.jsonl").read_text().splitlines()]
    assert record["at_step"] == 6
    assert record["changed"] == {"train.log_every": [10, 2], "train.max_steps": [6, 7]}
    assert json.loads((stopped / "results.json").read_text())["steps"] == 7


def test_a_run_with_nothing_left_says_why(cli, stopped):
    before = _files(stopped)
    result = cli("run", "--resume", str(stopped))
    assert result.exit_code == 0, result.output
    assert "nothing left to do" in result.output and "train.max_steps = 6" in result.output
    assert "--max-steps N with N > 6" in result.output
    assert _files(stopped) == before


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_resume_of_a_folder_that_is_not_a_run_is_a_checkpoint_error(cli, tmp_path, make):
    target = tmp_path / "x"
    if make == "empty":
        target.mkdir()
    result = cli("run", "--resume", str(target))
    assert result.exit_code == 4, result.output
    assert f"cannot resume {target}" in result.output
