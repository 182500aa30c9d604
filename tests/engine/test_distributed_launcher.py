"""``mtlx run --nproc N``: the launcher forwards signals, reports the failing worker's error and restarts workers.

Real torchrun (gloo, CPU) subprocesses on the toy plugin; the fault plugins come from ``tests/fixtures``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtlx.checkpoint import load_checkpoint

FIXTURES = Path(__file__).parents[1] / "fixtures"
TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "toy-weighted", "-q", "--threads", "1"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), *sys.path]), "OMP_NUM_THREADS": "1",
            **extra}


def _mtlx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mtlx", *args], check=False, env=env or _env(),
                          capture_output=True, text=True, timeout=300)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has exited


def _descendants(pid: int) -> set[int]:
    children = {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    return children.union(*(_descendants(c) for c in children if _alive(c)))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_distributed_launcher_forwards_signals_to_workers_which_checkpoint(tmp_path, sig):
    out = tmp_path / "run"
    args = [*TOY, "--nproc", "2", "--epochs", "400", "-o", "dataset.size=64", "-o", "train.log_every=1",
            "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "mtlx", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and not (metrics.is_file() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    assert metrics.is_file(), "training did not start within 180 s"
    workers = _descendants(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(sig)  # to the launcher only, as `kill PID` does
    _, stderr = proc.communicate(timeout=120)
    survivors = {pid for pid in workers if _alive(pid)}
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers left running after {sig.name}: {survivors}"
    assert proc.returncode == 130, stderr
    assert f"stopped by {sig.name}" in stderr and "--resume" in stderr, stderr
    assert (out / "last.pt").is_file(), stderr
    assert 0 < load_checkpoint(out / "last.pt")["engine"]["state"]["iteration"] < 400 * 16


@pytest.mark.slow
@pytest.mark.parametrize("bad", [["-s", "nope"], ["-o", "train.max_steps=0"]])
def test_distributed_launcher_reports_a_bad_config_as_one_process_does(tmp_path, bad):
    one = _mtlx(*TOY, *bad, "--out", str(tmp_path / "one"))
    two = _mtlx(*TOY, *bad, "--nproc", "2", "--out", str(tmp_path / "two"))
    assert one.returncode in (2, 3), one.stderr
    assert (two.returncode, two.stderr.strip()) == (one.returncode, one.stderr.strip())
    assert not (tmp_path / "two").exists()


@pytest.mark.slow
def test_distributed_launcher_reports_the_failing_workers_exit_code_and_line(tmp_path):
    args = ["--plugin", "faulty_plugin", *TOY[2:], "-d", "toy-faulty", "-o", "dataset.poison=loss",
            "-o", "dataset.poison_task=seg0", "-o", "dataset.poison_from=2", "-o", "dataset.poison_to=100",
            "--epochs", "1"]
    one = _mtlx("--plugin", "mtlx_testing.plugin", *args, "--out", str(tmp_path / "one"))
    two = _mtlx("--plugin", "mtlx_testing.plugin", *args, "--nproc", "2", "--out", str(tmp_path / "two"))
    assert one.returncode == 6, one.stderr
    assert two.returncode == 6, two.stderr
    lines = two.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: step 2 (epoch 0): the loss of task 'seg0' is nan"), two.stderr


@pytest.mark.slow
def test_distributed_launcher_stops_every_worker_after_the_same_step(tmp_path):
    """The signal reaches rank 0 after step 3 has shared its stop requests, while rank 1 has gone on to step 4:
    both stop after step 4 (rank 0 stopping alone after step 3 left rank 1 waiting in step 4's all-reduce until
    the agent killed both 30 s later, and no worker reported)."""
    out = tmp_path / "run"
    done = _mtlx("--plugin", "killer_plugin", *TOY, "--nproc", "2", "--epochs", "400", "-o", "dataset.size=64",
                 "--out", str(out), env=_env(KILL_STEP="3", KILL_RANK="0", KILL_SIGNAL="SIGINT", KILL_WHOM="launcher"))
    assert done.returncode == 130, done.stderr
    line = (f"Error: stopped by SIGINT at step 4; a resumable checkpoint is in {out / 'last.pt'}: continue with "
            f"mtlx run --resume {out}")
    assert done.stderr.strip().splitlines() == [line]
    assert load_checkpoint(out / "last.pt")["engine"]["state"]["iteration"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("fault", [
    ("-d", "toy-faulty", "-o", "dataset.poison=loss", "-o", "dataset.poison_task=seg0", "-o", "dataset.poison_from=2",
     "-o", "dataset.poison_to=100"),
    ("-s", "raises", "-o", "strategy.at_step=2"),
], ids=["nonfinite-6", "plugin-3"])
def test_distributed_launcher_does_not_restart_after_an_error_a_restart_would_repeat(tmp_path, fault):
    log = tmp_path / "attempts.log"
    args = ["--plugin", "mtlx_testing.plugin", "--plugin", "faulty_plugin", "--plugin", "killer_plugin", *TOY[2:],
            *fault, "--epochs", "1", "--nproc", "2", "--max-restarts", "2", "--out", str(tmp_path / "run")]
    done = _mtlx(*args, env=_env(ATTEMPTS_LOG=str(log), KILL_STEP="1000"))
    assert done.returncode in (3, 6), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert sorted(log.read_text().splitlines()) == ["0 0", "0 1"]  # one attempt: no restart


@pytest.mark.slow
def test_distributed_launcher_max_restarts_resumes_a_killed_worker_from_last_pt(tmp_path):
    args = (*TOY, "--batch-size", "2", "--epochs", "3", "--checkpoint-every", "2")
    clean = _mtlx(*args, "--nproc", "2", "--out", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    log = tmp_path / "attempts.log"
    killed = _mtlx("--plugin", "killer_plugin", *args, "--nproc", "2", "--max-restarts", "1",
                   "--out", str(tmp_path / "killed"), env=_env(KILL_STEP="5", KILL_RANK="1", ATTEMPTS_LOG=str(log)))
    assert killed.returncode == 0, killed.stderr
    assert "mtlx run: worker 1 was killed by SIGKILL; restarting the workers from last.pt (restart 1 of 1)" in (
        killed.stderr)
    assert sorted(log.read_text().splitlines()) == ["0 0", "0 1", "1 0", "1 1"]
    weights = [load_checkpoint(tmp_path / name / "last.pt")["engine"]["model"] for name in ("clean", "killed")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
