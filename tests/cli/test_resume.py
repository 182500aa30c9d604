"""Resume records exactly what ran: the experiment cannot change, the budget can, and the record says so."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mtlx.checkpoint import load_checkpoint, save_checkpoint

RUN = ("run", "-d", "toy", "-s", "toy-weighted", "-q")
FIXTURES = Path(__file__).parents[1] / "fixtures"


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


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_extending_a_cosine_schedule_follows_the_new_horizon(cli, tmp_path):
    """Epoch e of a run extended to E epochs trains at lr·(1 + cos(π e / E)) / 2, as a run started with E would."""
    out = tmp_path / "run"
    options = ("-o", "train.scheduler=cosine", "-o", "train.log_every=1")
    assert cli(*RUN, "--epochs", "2", *options, "--out", str(out)).exit_code == 0
    result = cli("run", "--resume", str(out), "--epochs", "3")
    assert result.exit_code == 0, result.output
    lr = {r["epoch"]: r["lr"] for r in _records(out) if r["event"] == "train"}
    assert lr[0] == pytest.approx(1e-3) and lr[1] == pytest.approx(1e-3 * (1 + math.cos(math.pi / 2)) / 2)
    assert lr[2] == pytest.approx(1e-3 * (1 + math.cos(2 * math.pi / 3)) / 2)  # 2.5e-4, not 0


def test_a_checkpoint_from_another_run_is_refused(cli, stopped, tmp_path):
    other = tmp_path / "other"
    assert cli(*RUN, "--epochs", "2", "--max-steps", "6", "--out", str(other)).exit_code == 0
    shutil.copy(other / "last.pt", stopped / "last.pt")
    before = _files(stopped)
    result = cli("run", "--resume", str(stopped), "--max-steps", "8")
    assert result.exit_code == 4, result.output
    assert f"{stopped / 'last.pt'} belongs to another run" in result.output and "Traceback" not in result.output
    assert _files(stopped) == before


def test_a_checkpoint_that_does_not_fit_the_model_is_refused(cli, stopped):
    config = stopped / "config.toml"
    config.write_text(config.read_text().replace("channels = 8", "channels = 4"))
    result = cli("run", "--resume", str(stopped), "--max-steps", "8")
    assert result.exit_code == 4, result.output
    assert f"{stopped / 'last.pt'} does not fit the model" in result.output and "Traceback" not in result.output


def test_a_different_number_of_processes_is_refused(cli, stopped):
    """The checkpoint records the world size; a resume with another one would replay or skip samples."""
    checkpoint = load_checkpoint(stopped / "last.pt")
    assert checkpoint["world_size"] == 1
    save_checkpoint(stopped / "last.pt", {**checkpoint, "world_size": 2})
    result = cli("run", "--resume", str(stopped), "--max-steps", "8")
    assert result.exit_code == 2, result.output
    assert "was trained by 2 processes; resume it with --nproc 2" in result.output


def test_out_with_resume_is_refused(cli, stopped, tmp_path):
    result = cli("run", "--resume", str(stopped), "--out", str(tmp_path / "elsewhere"), "--max-steps", "8")
    assert result.exit_code == 2, result.output
    assert "--out cannot be given with --resume" in result.output
    assert not (tmp_path / "elsewhere").exists()


def test_resume_after_sigkill_keeps_one_record_per_step_and_cleans_temporary_files(cli, tmp_path):
    """Killed at step 6 (last.pt from step 4), resumed: the records are those of a run never killed."""
    args = (*RUN, "--epochs", "3", "--threads", "1", "-o", "train.log_every=1")
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert cli(*args, "--out", str(clean)).exit_code == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), *sys.path]), "OMP_NUM_THREADS": "1",
           "KILL_RANK": "0", "KILL_STEP": "6"}
    done = subprocess.run([sys.executable, "-m", "mtlx", "--plugin", "mtlx_testing.plugin", "--plugin", "killer_plugin", *args, "--out", str(killed)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert max(r["step"] for r in _records(killed)) == 6
    (killed / ".last.pt.x1y2z3.tmp").write_bytes(b"PK\x03\x04 the half of a checkpoint")  # a writer killed mid-write
    result = cli("run", "--resume", str(killed))
    assert result.exit_code == 0, result.output
    assert f"resuming {killed} at step 4 (epoch 2 of 3)" in result.output
    assert not list(killed.glob(".*.tmp"))

    def train(run_dir):
        return [(r["step"], r["losses"]) for r in _records(run_dir) if r["event"] == "train"]

    assert train(killed) == train(clean)
    times = [r["time"] for r in _records(killed)]
    assert times == sorted(times), "metrics.jsonl's time restarted on resume"
