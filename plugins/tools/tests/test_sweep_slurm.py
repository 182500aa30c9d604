"""The SLURM executor: refused where there is no SLURM; on a real single-node cluster (the ``slurm_cluster``
fixture), one job array whose tasks report their exit codes, are requeued and resume when signalled for
preemption, and, cancelled with ``scancel``, are resumed exactly by the next ``mtlx sweep``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from mtlx.checkpoint import load_checkpoint
from mtlx.errors import ConfigError
from mtlx_tools.sweep.executor import Job

from .slurm_cluster import SlurmCluster, unavailable_reason

pytest.importorskip("submitit", reason="the optional extra of the slurm executor: pip install 'mtlx-tools[slurm]'")
from mtlx_tools.sweep.slurm import SlurmExecutor, slurm_minutes

# digits cells of 64 steps with a checkpoint every 4: a task still runs well after its first last.pt
SETTINGS = ("-o", "train.epochs=2", "-o", "dataset.train_size=128", "-o", "dataset.val_size=32",
            "-o", "dataset.test_size=32", "-o", "train.batch_size=4", "-o", "train.checkpoint_every=4")
SWEEP = ("sweep", "-d", "digits", "-s", "ew", "--seeds", "0,1", *SETTINGS, "--threads", "1")
RUN = ("run", "-d", "digits", "-s", "ew", "-q", *SETTINGS)
# an idempotent command, as a sweep cell's is: start the run in argv[1], or resume it from its last.pt
CELL = ("import os, sys; from mtlx.cli import main; out = sys.argv[1]; start = ['run', '--resume', out] "
        f"if os.path.isfile(os.path.join(out, 'last.pt')) else [*{RUN!r}, '--out', out]; main([*start, *sys.argv[2:]])")
DEADLINE_S = 600  # for a condition to come true on a loaded machine; never a timing


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["engine"]["model"]


def _assert_same_weights(run: Path, reference: Path) -> None:
    got, want = _weights(run), _weights(reference)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in got), f"{run}'s weights differ from the uninterrupted run's"


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.1)


def _mtlx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mtlx", *args], capture_output=True, text=True, timeout=DEADLINE_S,
                          check=False)


def _running_task(cluster: SlurmCluster) -> str:
    running = [job_id for job_id, state in cluster.queue().items() if state == "RUNNING"]
    assert len(running) == 1, cluster.queue()
    return running[0]


class Background:
    """``executor.run`` in a thread, so that the test can signal its tasks meanwhile; ``codes``: key -> exit code."""

    def __init__(self, executor: SlurmExecutor, jobs: list[Job]) -> None:
        self.codes: dict[str, int | None] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(executor, jobs))
        self._thread.start()

    def _run(self, executor: SlurmExecutor, jobs: list[Job]) -> None:
        try:
            executor.run(jobs, lambda job, code: self.codes.setdefault(job.key, code))
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread by join()
            self.error = error

    def join(self) -> dict[str, int | None]:
        self._thread.join(DEADLINE_S)
        assert not self._thread.is_alive(), "the executor did not return"
        if self.error is not None:
            raise self.error
        return self.codes


# --- refused where there is no SLURM (fast, no cluster) -------------------------------------------------------


def test_slurm_executor_is_refused_without_slurm_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as refused:
        SlurmExecutor(folder=tmp_path / "slurm")
    assert refused.value.exit_code == 2
    assert str(refused.value) == ("--executor slurm: SLURM's sbatch, srun, squeue, scancel, scontrol, sinfo not "
                                  "found on PATH; run the sweep on a SLURM login node, or use --executor local")
    assert not (tmp_path / "slurm").exists()


def test_sweep_with_slurm_executor_without_slurm_is_one_line_exit_2_and_launches_nothing(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = cli("sweep", "-d", "toy", "-s", "toy-weighted", "--seeds", "0,1", "--executor", "slurm",
                 "--out", str(tmp_path / "sweep"))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        ("Error: --executor slurm: SLURM's sbatch, srun, squeue, scancel, scontrol, sinfo not found on PATH; run "
         "the sweep on a SLURM login node, or use --executor local")]
    assert not (tmp_path / "sweep").exists()


def test_slurm_executor_is_refused_when_the_controller_is_unreachable(tmp_path, monkeypatch):
    if shutil.which("scontrol") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but SLURM's client commands are not installed (.ci/run installs them)")
        pytest.skip(unavailable_reason())
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={port}\n"
                    "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=ALL Default=YES\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(ConfigError) as refused:
        SlurmExecutor(folder=tmp_path / "slurm")
    assert refused.value.exit_code == 2
    assert re.fullmatch(r"--executor slurm: the SLURM controller is not reachable \(scontrol ping: "
                        r"Slurmctld\(primary\) at \S+ is DOWN\)", str(refused.value)), str(refused.value)
    assert not (tmp_path / "slurm").exists()


@pytest.mark.parametrize(("text", "minutes"), [("30:00", 30), ("0:30", 1), ("2:00:00", 120), ("1-12:00:00", 2160),
                                               ("2-1", 2940), ("5", 5), ("infinite", None), ("n/a", None)])
def test_slurm_durations_as_sinfo_prints_them(text, minutes):
    assert slurm_minutes(text) == minutes


# --- on a real cluster ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("options", "refusal"), [
    ({"partition": "gpu"}, "the cluster has no partition 'gpu' (partitions: debug*, short)"),
    ({"partition": "short", "time": 60}, "a time limit of 60 min exceeds the partition's 30 min"),
    ({"gpus": 1}, "SLURM refuses the jobs' resources (sbatch: error: "),
])
def test_slurm_resources_the_cluster_lacks_are_refused_before_submitting(slurm_cluster, tmp_path, options, refusal):
    with pytest.raises(ConfigError) as refused:
        SlurmExecutor(folder=tmp_path / "slurm", **options)
    assert str(refused.value).startswith(f"--executor slurm: {refusal}"), str(refused.value)
    assert "\n" not in str(refused.value)
    assert not slurm_cluster.queue()
    assert not (tmp_path / "slurm").exists()


@pytest.mark.slow
def test_slurm_partition_default_time_limit_and_setup_lines_reach_the_tasks(slurm_cluster, tmp_path):
    executor = SlurmExecutor(folder=tmp_path / "slurm", partition="short", setup=("export MTLX_TEST_CODE=7",))
    job = Job(key="setup", run_dir=tmp_path / "run",
              argv=(sys.executable, "-c", "import os, sys; sys.exit(int(os.environ['MTLX_TEST_CODE']))"))
    assert Background(executor, [job]).join() == {"setup": 7}
    script = next((tmp_path / "slurm").glob("*_submission.sh")).read_text()
    assert "#SBATCH --partition=short" in script and "#SBATCH --time=10" in script, script  # short's default


@pytest.mark.slow
def test_slurm_array_reports_each_tasks_exit_code(slurm_cluster, tmp_path):
    def job(key: str, code: str) -> Job:
        return Job(key=key, run_dir=tmp_path / key, argv=(sys.executable, "-c", code))

    jobs = [job("ok", "import sys; sys.exit(0)"), job("failed", "import sys; sys.exit(3)"),
            job("killed", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")]
    codes = Background(SlurmExecutor(folder=tmp_path / "slurm"), jobs).join()
    assert codes == {"ok": 0, "failed": 3, "killed": -9}
    submissions = list((tmp_path / "slurm").glob("*_submission.sh"))
    assert len(submissions) == 1, "the jobs were not submitted as one array"
    assert "#SBATCH --array=0-2%3" in submissions[0].read_text()


@pytest.mark.slow
def test_slurm_interrupted_sweep_cancels_its_tasks_and_reports_them(slurm_cluster, tmp_path):
    """Ctrl-C of the sweep (the executor in its main thread, where signals go) leaves no task behind."""
    script = f"""
import sys
from pathlib import Path
from mtlx_tools.sweep.executor import Job
from mtlx_tools.sweep.slurm import SlurmExecutor
run = "import time; print('started', flush=True); time.sleep(600)"
jobs = [Job(key=key, run_dir=Path({str(tmp_path)!r}) / key, argv=(sys.executable, "-c", run)) for key in ("a", "b")]
try:
    SlurmExecutor(folder={str(tmp_path / "slurm")!r}).run(jobs, lambda job, code: print(job.key, code, flush=True))
except Exception as error:
    print(type(error).__name__, error, flush=True)
"""
    sweep = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: len(slurm_cluster.queue()) == 2, "both tasks queued")
    logs = [tmp_path / "slurm" / f"{job_id}_0_log.out" for job_id in slurm_cluster.queue()]
    _wait_for(lambda: all(log.is_file() and "started" in log.read_text() for log in logs), "both runs started")
    sweep.send_signal(signal.SIGINT)
    output = sweep.communicate(timeout=DEADLINE_S)[0]
    assert sorted(output.splitlines()) == ["RunInterrupted stopped by SIGINT; its SLURM jobs were cancelled",
                                           "a -15", "b -15"], output  # scancel's SIGTERM ended each run
    assert not slurm_cluster.queue()


@pytest.mark.slow
def test_slurm_task_signalled_for_preemption_is_requeued_and_resumes_exactly(slurm_cluster, tmp_path):
    """USR2 is what SLURM sends before a task's time limit (submitit's --signal) and, so configured, on preemption."""
    reference = tmp_path / "reference"
    done = _mtlx(*RUN, "--threads", "1", "--out", str(reference))
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    cell = Job(key="cell", run_dir=run, argv=(sys.executable, "-c", CELL, str(run), "--threads", "1"))
    background = Background(SlurmExecutor(folder=tmp_path / "slurm", log_dir=tmp_path / "logs"), [cell])
    _wait_for(lambda: (run / "last.pt").is_file(), "a first checkpoint")
    slurm_cluster.run("scancel", "--signal=USR2", _running_task(slurm_cluster))
    assert background.join() == {"cell": 0}
    log = (tmp_path / "logs" / "cell.log").read_text()
    assert "Error: stopped by SIGTERM" in log, log  # checkpoint() stopped the run ...
    assert re.search(rf"resuming {re.escape(str(run))} at step \d+ ", log), log  # ... and the requeued task resumed it
    _assert_same_weights(run, reference)


@pytest.mark.slow
def test_slurm_sweep_scancelled_mid_run_resumes_exactly_on_the_next_sweep(slurm_cluster, tmp_path):
    reference = tmp_path / "reference"
    local = _mtlx(*SWEEP, "--jobs", "2", "--out", str(reference))
    assert local.returncode == 0, local.stderr
    keys = sorted(p.name for p in (reference / "runs").iterdir())
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "mtlx", *SWEEP, "--executor", "slurm", "--cpus", "1", "--out", str(out)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: any((out / "runs" / key / "last.pt").is_file() for key in keys), "a first checkpoint")
    cancelled = next(key for key in keys if (out / "runs" / key / "last.pt").is_file())
    logs = {job_id: out / "slurm" / f"{job_id}_0_log.out" for job_id in slurm_cluster.queue()}
    task = next(job_id for job_id, log in logs.items() if log.is_file() and f"cell {cancelled}:" in log.read_text())
    slurm_cluster.run("scancel", task)
    output = first.communicate(timeout=DEADLINE_S)[0]
    assert first.returncode == 1, output
    assert not (out / "runs" / cancelled / "results.json").exists(), "scancel came after the run had finished"
    assert f"1 of 2 runs did not finish: {cancelled} (interrupted, exit 130)" in output, output

    again = _mtlx(*SWEEP, "--executor", "slurm", "--cpus", "1", "--out", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 cells in" in again.stdout and "1 to resume, 1 finished" in again.stdout, again.stdout
    for key in keys:
        _assert_same_weights(out / "runs" / key, reference / "runs" / key)
    assert "resuming" in (out / "logs" / f"{cancelled}.log").read_text()  # the runs' output, as the local executor's
