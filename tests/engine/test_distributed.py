"""Data parallelism under torchrun (gloo, 2 CPU processes) and surviving faults.

Each test runs `mtlx` in subprocesses on the toy plugin, so it needs no
first-party plugin.
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
TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "toy-weighted", "-q"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), *sys.path]), "OMP_NUM_THREADS": "1"}


def _mtlx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mtlx", *args], check=False, env=env or _env(),
                          capture_output=True, text=True, timeout=300)


def _torchrun(*args: str, nproc: int = 2, extra: tuple[str, ...] = (), env: dict[str, str] | None = None):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *extra,
               "-m", "mtlx", *args]
    return subprocess.run(command, check=False, env=env or _env(), capture_output=True, text=True, timeout=300)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["engine"]["model"]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    """The toy model has no BatchNorm, whose statistics are per process on CPU (test_distributed_batchnorm.py)."""
    single = _mtlx(*TOY, "--batch-size", "4", "--epochs", "2", "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    double = _torchrun(*TOY, "--batch-size", "2", "--epochs", "2", "--out", str(tmp_path / "two"))
    assert double.returncode == 0, double.stderr
    assert _max_diff(_weights(tmp_path / "one"), _weights(tmp_path / "two")) < 1e-5
    assert (tmp_path / "two" / "results.json").read_text() != ""


@pytest.mark.slow
def test_sigkill_of_a_worker_restarts_from_checkpoint_with_identical_result(tmp_path):
    args = (*TOY, "--batch-size", "2", "--epochs", "3", "--checkpoint-every", "2")
    clean = _torchrun(*args, "--out", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    env = {**_env(), "KILL_STEP": "5", "KILL_RANK": "1"}
    killed = _torchrun("--plugin", "killer_plugin", *args, "--out", str(tmp_path / "killed"),
                       extra=("--max-restarts=1",), env=env)
    assert killed.returncode == 0, killed.stderr
    assert "SIGKILL" in killed.stderr or "Signals.SIGKILL" in killed.stderr or "exitcode" in killed.stderr
    assert _max_diff(_weights(tmp_path / "clean"), _weights(tmp_path / "killed")) == 0.0


def test_sigterm_writes_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [*TOY, "--epochs", "400", "-o", "dataset.size=64", "-o", "train.log_every=1", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "mtlx", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    assert metrics.is_file() and metrics.stat().st_size > 0, "training did not start within 120 s"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    assert (out / "last.pt").is_file(), f"no checkpoint after the stop; run dir: {sorted(os.listdir(out))}\n{stderr}"
    state = load_checkpoint(out / "last.pt")["engine"]["state"]
    assert 0 < state["iteration"] < 400 * 16
    assert not (out / "results.json").exists()


def test_every_collective_of_the_engine_uses_the_engine_device(monkeypatch):
    """NCCL rejects CPU tensors: the non-finite and stop flags are reduced on the engine's device."""
    from types import SimpleNamespace

    from mtlx import distributed
    from mtlx.engine import Engine

    seen = []

    def record(tensor):
        seen.append(tensor.device)
        return torch.ones(())  # another process had the flag set

    monkeypatch.setattr(distributed, "all_reduce_mean", record)
    engine = SimpleNamespace(device=torch.device("meta"))  # a device other than the default CPU
    assert Engine._on_any_process(engine, False) is True
    assert seen == [torch.device("meta")]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ew", "mgda", "rep-mtl"])
def test_mtl_in_a_users_loop_two_processes_equal_one(tmp_path, strategy):
    """mtlx.MTL under torchrun (gloo): 2 processes with half the batch each end with the 1-process weights."""
    pytest.importorskip("mtlx_baselines", reason="the strategies come from mtlx-baselines and mtlx-repmtl")
    pytest.importorskip("mtlx_repmtl", reason="the strategies come from mtlx-baselines and mtlx-repmtl")
    worker = str(FIXTURES / "mtl_ddp_worker.py")
    for nproc, name in ((1, "one.pt"), (2, "two.pt")):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                   worker, strategy, str(tmp_path / name)]
        done = subprocess.run(command, check=False, env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-8  # fp64: summation order only


@pytest.mark.parametrize("spec", ["cuda:0", "cuda:1"])
def test_an_explicit_cuda_index_is_refused_with_several_processes(spec, monkeypatch):
    """Each process takes the GPU of its local rank; one named GPU would be every process's (checked on a CPU)."""
    from mtlx import distributed
    from mtlx.errors import ConfigError

    for fine, nproc in (("cuda", 2), ("auto", 2), ("cpu", 2), (spec, 1)):
        distributed.check_device(fine, nproc)
    with pytest.raises(ConfigError, match=rf"--device {spec} names one GPU, but each of the 2 processes uses the GPU "
                                          r"of its local rank .*use --device cuda"):
        distributed.check_device(spec, 2)
    monkeypatch.setenv("WORLD_SIZE", "2")  # a worker that torchrun started: refused before it joins the group
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=f"--device {spec} names one GPU"):
        distributed.init_from_env(torch.device(spec))


def test_nproc_with_an_explicit_cuda_index_exits_2_before_any_worker(tmp_path):
    done = _mtlx(*TOY, "--threads", "1", "--nproc", "2", "--device", "cuda:0", "--out", str(tmp_path / "run"))
    assert done.returncode == 2, done.stderr
    line = ("Error: --device cuda:0 names one GPU, but each of the 2 processes uses the GPU of its local rank "
            "(cuda:0, cuda:1, ...): use --device cuda, and CUDA_VISIBLE_DEVICES to choose GPUs")
    assert done.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "run").exists()
