"""The SLURM executor: a sweep's jobs as a SLURM job array, submitted and watched through submitit.

Each array task runs its job's command (idempotent: it starts the cell's run or resumes it from ``last.pt``) in a
subprocess. Before a task's time limit, or when it is preempted, SLURM sends submitit's signal (USR2); submitit
calls :meth:`CellTask.checkpoint`, which stops the run (SIGTERM: it writes ``last.pt``) and hands back the same
command, and requeues the task, which then resumes the run. The executor blocks until every task has left the
queue and reports the command's exit code from submitit's result file (130 for a run stopped by ``scancel``'s
SIGTERM, minus the signal's number for one killed by it). A task that left without a result (killed by ``scancel`` or a node
failure before it could write one, timed out more often than submitit requeues) is reported as lost (None). The
sweep counts all of these as interrupted, and its next run resumes them.

Task states come from ``squeue``, not from submitit's watcher: that one asks ``sacct``, which needs accounting
storage, and small clusters (the tests' one among them) run without.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import time as _time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

import attrs
import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.helpers import Checkpointable, DelayedSubmission

from mtlx.errors import ConfigError, RunInterrupted
from mtlx.signals import on_stop_signals

from .executor import Job, OnFinish

__all__ = ["CellTask", "SlurmExecutor", "check_slurm"]

COMMANDS = ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")  # what submitting and watching call
POLL_S = 5.0  # between two squeue calls: one call covers the whole array
RESULT_GRACE_S = 15.0  # how late a shared file system may show a task's result file (submitit waits as long)
NO_LIMIT_MIN = 365 * 24 * 60  # the time limit asked for on a partition without one
PING_S = 15  # a controller answers `scontrol ping` in milliseconds


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _first_line(*outputs: str | bytes | None) -> str:
    text = "\n".join(o.decode() if isinstance(o, bytes) else o for o in outputs if o)
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def check_slurm() -> None:
    """Refuse, with one line and before anything is submitted, where SLURM jobs cannot be submitted."""
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        raise ConfigError(f"--executor slurm: SLURM's {', '.join(missing)} not found on PATH; run the sweep on a "
                          "SLURM login node, or use --executor local")
    try:
        ping = _run("scontrol", "ping", timeout=PING_S)
    except subprocess.TimeoutExpired as error:  # scontrol retries a missing configuration for a minute
        raise ConfigError(f"--executor slurm: `scontrol ping` did not answer in {PING_S} s "
                          f"({_first_line(error.stderr, error.stdout)})") from None
    if ping.returncode != 0 or "is UP" not in ping.stdout:
        raise ConfigError(f"--executor slurm: the SLURM controller is not reachable (scontrol ping: "
                          f"{_first_line(ping.stdout, ping.stderr)})")


def slurm_minutes(text: str) -> int | None:
    """A SLURM duration as sinfo prints it (``30:00``, ``2:00:00``, ``1-12:00:00``) in whole minutes; None: none."""
    if text in ("infinite", "n/a"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days or len(parts) == 3:  # [days-]hours[:minutes[:seconds]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    else:  # minutes[:seconds]
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return (int(days or 0) * 24 + hours) * 60 + minutes + (seconds > 0)


def partition_limits(partition: str | None) -> tuple[int | None, int | None]:
    """The partition's default and maximum time limits in minutes (None: none); an unknown partition is refused."""
    rows = [line.split() for line in _run("sinfo", "--noheader", "--format=%P %L %l").stdout.splitlines()]
    for name, default, maximum in rows:
        if name.rstrip("*") == partition or (partition is None and name.endswith("*")):
            return slurm_minutes(default), slurm_minutes(maximum)
    wanted = f"partition {partition!r}" if partition else "default partition"
    raise ConfigError(f"--executor slurm: the cluster has no {wanted} (partitions: "
                      f"{', '.join(row[0] for row in rows) or 'none'})")


class CellTask(Checkpointable):
    """One array task: run a job's command; on preemption or time-out, stop it and requeue the same command.

    The run's output is appended to ``log`` (where the local executor puts it too), else to the task's log.
    """

    def __init__(self, argv: Sequence[str], key: str, threads: int, log: Path | None) -> None:
        self.argv, self.key, self.threads, self.log = tuple(argv), key, threads, log
        self._proc: subprocess.Popen[bytes] | None = None

    def __call__(self) -> int:
        print(f"mtlx sweep: cell {self.key}: {shlex.join(self.argv)}", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        checkpoint_signal = {getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}")}
        with contextlib.ExitStack() as stack:
            out = None
            if self.log is not None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                out = stack.enter_context(self.log.open("ab"))
            # SLURM signals every process of the task: the run inherits submitit's signal blocked (it would kill
            # it) and is stopped by checkpoint() instead; here the signal, if one came meanwhile, arrives on unblock
            signal.pthread_sigmask(signal.SIG_BLOCK, checkpoint_signal)
            try:
                self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT if out else None, env=env)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, checkpoint_signal)
            return self._proc.wait()

    def checkpoint(self) -> DelayedSubmission:
        """Stop the run (on SIGTERM it writes ``last.pt`` and exits), then requeue the same, idempotent command."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            # not wait(): we are in a signal handler that may have interrupted wait(), which holds a lock
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._proc.pid, 0)
        return DelayedSubmission(CellTask(self.argv, self.key, self.threads, self.log))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_proc": None}  # a running process is not part of the pickled task


def _exit_code(result_file: Path) -> int | None:
    """A task's exit code from submitit's result file; None where submitit failed (e.g. timed out too often)."""
    outcome, value = pickle.loads(result_file.read_bytes())
    return value if outcome == "success" else None


@attrs.frozen(kw_only=True)
class SlurmExecutor:
    """Runs a sweep's jobs as a SLURM job array (several past the cluster's MaxArraySize), every task with the
    same resources.

    ``folder``: where submitit keeps the array's script, pickles and logs (``JOBID_TASK_0_log.out``); on a file
    system the nodes share, like the sweep directory itself. ``partition``: None for the cluster's default.
    ``gpus``: GPUs per task. ``cpus``: CPU cores per task (the job's command says how many threads the run uses).
    ``mem``: memory per task in SLURM's syntax (``16G``; None: the partition's default). ``time``: the time limit
    per task in minutes (None: the partition's default); a task that reaches it is requeued and resumes from
    ``last.pt``, up to three times (submitit's limit; after that it is reported lost).
    ``setup``: shell lines run before each task (``module load cuda``, ``source .venv/bin/activate``).
    ``log_dir``: where each run's output goes (``KEY.log``, appended; None: the task's log in ``folder``).

    Constructing one checks that SLURM answers, that the partition exists and that it can run such tasks
    (``sbatch --test-only``), so that bad options are refused before the sweep writes anything (:class:`ConfigError`,
    exit 2).
    """

    name: ClassVar[str] = "slurm"

    folder: Path = attrs.field(converter=Path)
    partition: str | None = None
    gpus: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    cpus: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    mem: str | None = None
    time: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    setup: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    log_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    _limit: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        check_slurm()
        default, maximum = partition_limits(self.partition)
        if self.time is not None and maximum is not None and self.time > maximum:
            raise ConfigError(f"--executor slurm: a time limit of {self.time} min exceeds the partition's "
                              f"{maximum} min")
        # submitit always asks for a limit, and needs it to tell a time-out from a preemption: without one of
        # ours, the limit SLURM would apply (the partition's default, else its maximum)
        object.__setattr__(self, "_limit", self.time or default or maximum or NO_LIMIT_MIN)
        test = _run("sbatch", "--test-only", "--wrap=true", *(f"--{k}={v}" for k, v in self._resources().items()))
        if test.returncode != 0:  # resources the cluster lacks (GPUs, memory): refused now, not once submitted
            raise ConfigError(f"--executor slurm: SLURM refuses the jobs' resources ({_first_line(test.stderr)})")

    def _resources(self) -> dict[str, str]:
        """Every task's sbatch options (besides the array's own)."""
        options = {"partition": self.partition, "time": self._limit, "cpus-per-task": self.cpus,
                   "gpus-per-node": self.gpus or None, "mem": self.mem}
        return {k: str(v) for k, v in options.items() if v is not None}

    def _submit(self, tasks: Sequence[CellTask]) -> list[submitit.SlurmJob]:
        """The tasks as arrays of at most the cluster's MaxArraySize; a refused submission cancels the arrays
        submitted before it and is one line."""
        submitter = submitit.SlurmExecutor(folder=self.folder)
        submitter.update_parameters(job_name="mtlx-sweep", time=self._limit, setup=list(self.setup),
                                    additional_parameters=self._resources())
        size = max(_max_array_size(), 1)
        handles: list[submitit.SlurmJob] = []
        conf = {k: v for k, v in os.environ.items() if k == "SLURM_CONF"}  # where the cluster is, not a setting
        try:
            with submitit.helpers.clean_env():  # a sweep started inside an allocation must not pass its settings on
                os.environ.update(conf)
                for start in range(0, len(tasks), size):
                    handles += submitter.submit_array(tasks[start:start + size])
        except (FailedJobError, FailedSubmissionError) as error:  # e.g. a limit on the jobs a user may queue
            if handles:
                _run("scancel", *(handle.job_id for handle in handles))
            raise ConfigError(f"--executor slurm: sbatch refused the jobs ({_first_line(str(error))})") from None
        return handles

    def run(self, jobs: Sequence[Job], on_finish: OnFinish) -> None:
        """Submit ``jobs`` as a job array and block until every task has left the queue.

        SIGINT (Ctrl-C) or SIGTERM cancels the tasks (their runs get SIGTERM: they write ``last.pt`` and stop),
        waits for them to end and report, and raises :class:`RunInterrupted`. An error does the same without the
        wait: no task is left behind that a re-run of the sweep would race on its run directory.
        """
        if not jobs:
            return
        handles = self._submit([CellTask(job.argv, job.key, job.threads,
                                         self.log_dir / f"{job.key}.log" if self.log_dir else None) for job in jobs])
        waiting = {handle.job_id: (job, handle.paths.result_pickle) for job, handle in zip(jobs, handles)}
        try:
            with _cancel_on_signals(waiting) as received:
                _watch(waiting, on_finish)
        except BaseException:
            if waiting:
                _run("scancel", *waiting)
            raise
        if received:
            raise RunInterrupted(f"stopped by {received[0]}; its SLURM jobs were cancelled")


def _cancel_on_signals(waiting: Mapping[str, object]) -> AbstractContextManager[list[str]]:
    """SIGINT/SIGTERM: record it and cancel the tasks still waiting (in the main thread only, where signals go)."""

    def cancel(received: list[str]) -> None:
        if waiting:
            _run("scancel", *waiting)

    return on_stop_signals(cancel)


def _max_array_size() -> int:
    """The cluster's MaxArraySize (array indices run from 0 to one less)."""
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", _run("scontrol", "show", "config").stdout, re.MULTILINE)
    return int(found.group(1)) if found else 1001  # SLURM's default


def _queued() -> set[str] | None:
    """This user's jobs still pending, running or requeued (``123_4`` for an array task); None if squeue failed."""
    result = _run("squeue", "--noheader", "--array", f"--user={getpass.getuser()}", "--format=%i")
    return set(result.stdout.split()) if result.returncode == 0 else None


def _watch(waiting: dict[str, tuple[Job, Path]], on_finish: OnFinish) -> None:
    """Report each task once it has left the queue, with its result file's exit code (removes it from waiting)."""
    left_at: dict[str, float] = {}
    while waiting:
        _time.sleep(POLL_S)
        queued = _queued()
        if queued is None:  # the controller is busy or restarting: ask again
            continue
        for job_id in [j for j in waiting if j not in queued]:
            job, result_file = waiting[job_id]
            if result_file.exists():
                code = _exit_code(result_file)
            elif _time.monotonic() - left_at.setdefault(job_id, _time.monotonic()) < RESULT_GRACE_S:
                continue
            else:
                code = None
            del waiting[job_id]
            on_finish(job, code)
