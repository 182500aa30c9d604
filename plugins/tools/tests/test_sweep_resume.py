"""A sweep killed (SIGKILL to its whole process group) or stopped (Ctrl-C) mid-run, run again, ends with the weights
of an uninterrupted sweep: finished runs are skipped, interrupted ones resumed from their last.pt, failed ones
run again only with --retry-failed.

Each sweep is a real ``mtlx sweep`` process whose jobs are real ``mtlx run`` processes (the core's toy plugin);
a small test plugin makes a run stop its sweep at a fixed step, so the interruption is deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
import torch

from mtlx.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

#: One failing cell (its loss overflows on step 2: exit 6), then seeds 0-2 of a toy run of 48 steps with a
#: checkpoint every 5 steps.
SPEC = {
    "dataset": {"name": "toy", "size": 64},
    "strategy": {"name": "toy-weighted"},
    "train": {"epochs": 3, "checkpoint_every": 5},
    "grid": {"seeds": "0-2"},
    "settings": [{"train.lr": 1e30, "train.seed": 0}, {}],
}

#: ``mtlx --plugin sweep_stopper``: with SWEEP_STOP="SEED:STEP:HOW", the run of that seed (not the failing
#: cell) stops its sweep after step STEP: HOW=kill SIGKILLs the sweep's process group (the sweep and every
#: run), HOW=interrupt sends the sweep SIGINT as Ctrl-C would.
STOPPER = '''
import os, signal

import mtlx
from mtlx.engine import Handler


class _Stop(Handler):
    def __init__(self, step, how):
        self.step, self.how = step, how

    def iteration_completed(self, engine):
        if engine.state.iteration == self.step:
            if self.how == "kill":
                os.killpg(os.getpgrp(), signal.SIGKILL)
            else:
                os.kill(os.getppid(), signal.SIGINT)


@mtlx.hookimpl
def mtlx_engine_created(engine, config):
    seed, step, how = os.environ.get("SWEEP_STOP", "::").split(":")
    if seed and config.train.seed == int(seed) and config.train.lr < 1:
        engine.attach(_Stop(int(step), how))
'''


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweeps")
    (root / "sweep_stopper.py").write_text(STOPPER)
    (root / "spec.toml").write_text(tomli_w.dumps(SPEC))
    return root


def sweep(workdir: Path, out: str, *args: str, stop: str | None = None) -> subprocess.CompletedProcess[str]:
    """``mtlx sweep spec.toml --out OUT`` in its own process group (killing the group spares pytest)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir), *sys.path]), "OMP_NUM_THREADS": "1"}
    env.pop("SWEEP_STOP", None)
    if stop:
        env["SWEEP_STOP"] = stop
    command = [sys.executable, "-m", "mtlx", "--plugin", "mtlx_testing.plugin", "--plugin", "sweep_stopper", "sweep",
               str(workdir / "spec.toml"), "--out", str(workdir / out), "--threads", "1", *args]
    return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=600, start_new_session=True)


def cells(sweep_dir: Path) -> dict[str, dict]:
    """``{label: manifest entry}``."""
    return {cell["label"]: cell for cell in json.loads((sweep_dir / "manifest.json").read_text())["cells"]}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["engine"]["model"]


FAILING, GOOD = "toy-toy-weighted-lr1e+30-seed0", ("toy-toy-weighted-seed0", "toy-toy-weighted-seed1",
                                                  "toy-toy-weighted-seed2")


@pytest.fixture(scope="module")
def reference(workdir) -> Path:
    """The same sweep, uninterrupted, two runs at a time."""
    done = sweep(workdir, "reference", "--jobs", "2")
    assert done.returncode == 1, done.stdout + done.stderr  # the failing cell
    assert "1 of 4 runs did not finish" in done.stderr and "(failed, exit 6)" in done.stderr
    return workdir / "reference"


def assert_same_weights(sweep_dir: Path, reference: Path) -> None:
    ours, theirs = cells(sweep_dir), cells(reference)
    for label in GOOD:
        assert ours[label]["key"] == theirs[label]["key"]
        a = weights(sweep_dir / "runs" / ours[label]["key"])
        b = weights(reference / "runs" / theirs[label]["key"])
        assert all(torch.equal(a[k], b[k]) for k in a), label


def test_the_reference_manifest(reference):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["spec"]["source"].endswith("spec.toml") and manifest["spec"]["axes"] == {"train.seed": [0, 1, 2]}
    assert manifest["plugins"] == ["mtlx_testing.plugin", "sweep_stopper"]
    by_label = cells(reference)
    assert list(by_label) == [FAILING, *GOOD]
    assert (by_label[FAILING]["state"], by_label[FAILING]["exit_code"]) == ("failed", 6)
    for label in GOOD:
        entry = by_label[label]
        assert (entry["state"], entry["exit_code"], entry["attempts"]) == ("finished", 0, 1)
        assert entry["config"]["train.seed"] == int(label[-1]) and entry["config"]["train.checkpoint_every"] == 5
        assert (reference / "runs" / entry["key"] / "results.json").is_file()


def test_a_killed_sweep_resumes_skips_and_retries_only_when_asked(workdir, reference):
    out = workdir / "killed"
    killed = sweep(workdir, "killed", "--jobs", "1", stop="1:20:kill")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    before = cells(out)
    assert before[FAILING]["state"] == "failed" and before[GOOD[0]]["state"] == "finished"
    assert before[GOOD[1]]["state"] == before[GOOD[2]]["state"] == "queued"  # what the kill left behind
    first = out / "runs" / before[GOOD[0]]["key"]
    killed_run = out / "runs" / before[GOOD[1]]["key"]
    assert (killed_run / "last.pt").is_file() and not (killed_run / "results.json").exists()
    assert 5 <= load_checkpoint(killed_run / "last.pt")["engine"]["state"]["iteration"] <= 20
    finished = (first / "results.json").read_bytes(), (first / "last.pt").stat().st_mtime_ns

    again = sweep(workdir, "killed", "--jobs", "1")
    assert again.returncode == 1, again.stdout + again.stderr  # the failed cell, skipped, is still failed
    assert "1 to run, 1 to resume, 1 finished, 1 failed (skipped; --retry-failed runs them)" in again.stdout
    assert "resuming from" in (out / "logs" / f"{before[GOOD[1]]['key']}.log").read_text()
    after = cells(out)
    assert [after[label]["state"] for label in GOOD] == ["finished"] * 3
    assert after[FAILING]["attempts"] == 1 and after[GOOD[0]]["attempts"] == 1
    assert ((first / "results.json").read_bytes(), (first / "last.pt").stat().st_mtime_ns) == finished
    assert_same_weights(out, reference)

    retried = sweep(workdir, "killed", "--jobs", "1", "--retry-failed")
    assert retried.returncode == 1
    assert "0 to run, 0 to resume, 3 finished, 1 failed (run again)" in retried.stdout
    final = cells(out)
    assert (final[FAILING]["attempts"], final[FAILING]["exit_code"]) == (2, 6)
    assert [final[label]["attempts"] for label in GOOD] == [1, 1, 1]  # the killed job reported nothing


def test_ctrl_c_stops_the_runs_with_a_checkpoint_and_the_next_sweep_resumes(workdir, reference):
    out = workdir / "stopped"
    stopped = sweep(workdir, "stopped", "--jobs", "1", stop="1:20:interrupt")
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert "the manifest records what ran: run the same command again to resume" in stopped.stderr
    state = cells(out)
    assert [state[label]["state"] for label in (FAILING, *GOOD)] == ["failed", "finished", "interrupted", "pending"]
    assert state[GOOD[1]]["exit_code"] == 130
    stopped_run = out / "runs" / state[GOOD[1]]["key"]
    assert 20 <= load_checkpoint(stopped_run / "last.pt")["engine"]["state"]["iteration"] < 48

    again = sweep(workdir, "stopped", "--jobs", "1")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "1 to run, 1 to resume, 1 finished, 1 failed" in again.stdout
    assert_same_weights(out, reference)
