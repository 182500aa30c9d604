"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd from the Debian packages.

The daemons run as root from a private directory (their own munge key and socket, configuration, state and
free ports), so they neither need nor touch a system installation; ``SLURM_CONF`` points the client commands
(sbatch, squeue, scancel) at it. Where they cannot start (not root, packages missing) the fixture skips with the
reason, except under ``CI=true``, where .ci/run installs the packages and a missing SLURM is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

PACKAGES = "slurmctld slurmd slurm-client munge"
COMMANDS = ("mungekey", "munged", "munge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "sinfo")
START_S = 60  # a deadline for the daemons to come up or for the queue to drain, not a timing


@attrs.frozen
class SlurmCluster:
    """A started cluster: its directory, configuration file and the one node's name."""

    root: Path
    conf: Path
    node: str

    @property
    def env(self) -> dict[str, str]:
        """The environment for client commands run against this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str) -> str:
        """Run a SLURM client command against this cluster and return its output."""
        return subprocess.run(argv, env=self.env, check=True, capture_output=True, text=True, timeout=60).stdout

    def queue(self) -> dict[str, str]:
        """Job id (``123_4`` for an array task) -> state, for every job still queued or running."""
        rows = self.run("squeue", "--noheader", "--array", "--format=%i %T").split()
        return dict(zip(rows[::2], rows[1::2]))

    def node_state(self) -> str:
        """The node's state (``idle``, ``alloc``, ...; sinfo prints it once per partition)."""
        return " ".join(sorted(set(self.run("sinfo", "--noheader", "--Node", f"--nodes={self.node}",
                                            "--format=%t").split())))


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started on this machine, or None."""
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install {PACKAGES}"
    if os.geteuid() != 0:
        return "starting munged and slurmd needs root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: Path, munge_socket: Path) -> tuple[str, str]:
    """The slurm.conf text and the node's name; the node line is ``slurmd -C``'s, so it matches the hardware.

    Two partitions: ``debug`` (the default, no time limit) and ``short`` (10 min by default, at most 30).

    ``cred_expire`` is also how long a requeued job waits before it may start again (120 s by default), and the
    scheduler looks at pending jobs every second (every 60 s by default) rather than only on events.
    """
    node_line = subprocess.run(["slurmd", "-C"], check=True, capture_output=True, text=True).stdout.splitlines()[0]
    node = node_line.split()[0].removeprefix("NodeName=")
    text = f"""\
ClusterName=mtlxtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerParameters=sched_interval=1,bf_interval=1
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=ALL DefaultTime=10 MaxTime=30 State=UP
"""
    return text, node


def _wait_for(what: str, ready, procs: dict[str, subprocess.Popen], logs: Path) -> None:
    """Poll ``ready()`` until true; fail with the daemons' logs if one exits or the deadline passes."""
    deadline = time.monotonic() + START_S
    while not ready():
        dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in sorted(logs.glob("*.log")))
            raise RuntimeError(f"the test SLURM cluster: {what} did not happen (exited: {dead})\n{tails}")
        time.sleep(0.5)


def _succeeds(*argv: str, env: dict[str, str]) -> bool:
    return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode == 0


@contextlib.contextmanager
def running_cluster() -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd in a fresh directory, wait until the node is idle; stop them after."""
    # munged requires every directory above its socket to be searchable by all: pytest's tmp dirs are 0700
    root = Path(tempfile.mkdtemp(prefix="mtlx-slurm-"))
    root.chmod(0o755)
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(mode=0o755)
    munge_socket = root / "munge" / "munge.socket"
    text, node = _config(root, munge_socket)
    cluster = SlurmCluster(root=root, conf=root / "slurm.conf", node=node)
    cluster.conf.write_text(text)
    env, logs = cluster.env, root / "log"
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, *argv: str) -> None:
        with (logs / f"{name}.log").open("w") as log:
            procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    try:
        subprocess.run(["mungekey", "--create", f"--keyfile={root / 'munge' / 'munge.key'}"], check=True)
        start("munged", "munged", "--foreground", f"--socket={munge_socket}", f"--key-file={root / 'munge/munge.key'}",
              f"--pid-file={root / 'munge/munged.pid'}", f"--seed-file={root / 'munge/munged.seed'}",
              f"--log-file={logs / 'munged.file.log'}")
        _wait_for("munged answering", lambda: _succeeds("munge", f"--socket={munge_socket}", "--no-input", env=env),
                  procs, logs)
        start("slurmctld", "slurmctld", "-D", "-f", str(cluster.conf))
        start("slurmd", "slurmd", "-D", "-f", str(cluster.conf))
        _wait_for(f"node {node} idle", lambda: _succeeds("sinfo", env=env) and cluster.node_state() == "idle",
                  procs, logs)
        yield cluster
    finally:
        if "slurmd" in procs and procs["slurmd"].poll() is None:
            # jobs' slurmstepd processes outlive slurmd: cancel what a test left running, then wait for it to end
            subprocess.run(["scancel", "--me"], env=env, capture_output=True, timeout=60, check=False)
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                _wait_for("queue drained", lambda: not cluster.queue(), procs, logs)
        for proc in reversed(procs.values()):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A started single-node cluster; ``SLURM_CONF`` points at it for the whole session."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no test SLURM cluster: {reason} (.ci/run installs it)")
        pytest.skip(reason)
    with running_cluster() as cluster, pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(cluster.conf))
        yield cluster
