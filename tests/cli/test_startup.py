"""`mtlx run`'s start-up: everything that can fail is checked before the run directory exists; the directory
is then claimed under a lock; a failure after that leaves a directory that ``--resume`` continues.

The faulty components come from ``tests/fixtures/faulty_plugin.py``.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mtlx.checkpoint import load_checkpoint
from mtlx_testing import invoke_cli

FIXTURES = Path(__file__).parents[1] / "fixtures"
TOY = ("--plugin", "mtlx_testing.plugin", "--plugin", "faulty_plugin")
RUN = (*TOY, "run", "-d", "toy", "-s", "toy-weighted", "-q", "--threads", "1")


@pytest.fixture
def cli(monkeypatch):
    """``mtlx`` in-process with the toy and the faulty plugins."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.delenv("FAULTY_HOOK_STEP", raising=False)
    return invoke_cli


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), *sys.path]), "OMP_NUM_THREADS": "1", **extra}


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error: ")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-o", "train.val_split=nope", "-o", "train.test_split=nope"), "has neither split 'nope' nor 'nope'"),
        (("-o", "train.drop_last=true", "--batch-size", "1000"), "no batch of 1000 with train.drop_last=true"),
        (("-o", "train.checkpoint_every=0",), "'checkpoint_every' must be >= 1: 0"),
        (("-o", "train.optimizer=sgd", "-o", "train.momentum=-1"), "'momentum' must be >= 0: -1.0"),
        (("-o", "train.max_grad_norm=-1",), "'max_grad_norm' must be > 0: -1.0"),
        (("-o", "train.max_steps=0",), "'max_steps' must be >= 1: 0"),
        (("-o", "train.eval_batch_size=0",), "'eval_batch_size' must be >= 1: 0"),
        (("--device", "meta"), "--device meta cannot train"),
        (("--device", "cuda:99"), "--device cuda:99"),
    ],
)
def test_a_start_that_fails_before_training_leaves_nothing_and_announces_nothing(cli, tmp_path, args, message):
    out = tmp_path / "run"
    result = cli(*RUN, "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert len(_error_lines(result.output)) == 1
    assert message in result.output and "Traceback" not in result.output
    assert "->" not in result.output, "the start line announced a directory that was never made"
    assert not out.exists()


def test_a_component_that_fails_after_the_claim_leaves_a_directory_resume_continues_from_step_0(
        cli, tmp_path, monkeypatch):
    """A hook raising at step 1: one line naming it; a rerun says --resume, which ends as a clean run does."""
    clean, failed = tmp_path / "clean", tmp_path / "failed"
    assert cli(*RUN, "--epochs", "2", "--out", clean).exit_code == 0
    monkeypatch.setenv("FAULTY_HOOK_STEP", "1")
    result = cli(*RUN, "--epochs", "2", "--out", failed)
    assert result.exit_code == 3, result.output
    (line,) = _error_lines(result.output)
    assert "handler _RaisesAt from module faulty_plugin" in line and "RuntimeError: the hook's counter" in line
    assert "step 1" in line and "--debug" in line
    assert not (failed / "last.pt").exists()
    monkeypatch.delenv("FAULTY_HOOK_STEP")
    rerun = cli(*RUN, "--epochs", "2", "--out", failed)
    assert rerun.exit_code == 4 and f"--resume {failed}" in rerun.output
    resumed = cli(*TOY, "run", "--resume", failed, "-q")
    assert resumed.exit_code == 0, resumed.output
    assert "at step 0" in resumed.output
    a, b = load_checkpoint(clean / "last.pt")["engine"]["model"], load_checkpoint(failed / "last.pt")["engine"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("args", "named", "cause"),
    [
        (("-s", "raises", "-o", "strategy.at_step=2"), "strategy 'raises'", "ValueError: weights went missing"),
        (("-d", "toy-faulty", "-o", "dataset.bad_index=5", "-o", "dataset.error=key"), "dataset 'toy-faulty'",
         "KeyError: 'sample_5'"),
        (("-d", "toy-faulty", "-o", "dataset.meter_raises=true"), "dataset 'toy-faulty'",
         "ZeroDivisionError: no pixels"),
    ],
)
def test_a_component_that_raises_is_named_with_its_distribution(cli, tmp_path, args, named, cause):
    result = cli(*RUN, "--out", tmp_path / "run", *args)
    assert result.exit_code == 3, result.output
    (line,) = _error_lines(result.output)
    assert f"{named} from <local> (faulty_plugin)" in line and cause in line, line
    assert "Traceback" not in result.output


def test_debug_shows_the_components_own_traceback(monkeypatch, tmp_path):
    from mtlx.cli import main
    from mtlx.errors import PluginError

    monkeypatch.syspath_prepend(str(FIXTURES))
    result = CliRunner().invoke(main, ["--debug", *TOY, "run", "-d", "toy", "-s", "raises", "-q", "--out",
                                       str(tmp_path / "r")])
    assert isinstance(result.exception, PluginError)
    assert isinstance(result.exception.__cause__, ValueError)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_data_error_in_a_loader_worker_is_one_line_naming_the_file_first(cli, tmp_path, workers):
    result = cli(*RUN, "-d", "toy-faulty", "-o", "dataset.bad_index=5", "--num-workers", workers,
                 "--out", tmp_path / "run")
    assert result.exit_code == 5, result.output
    (line,) = _error_lines(result.output)
    assert line.startswith("Error: /data/toy/sample_5.npz: truncated (12 of 96 bytes)"), line
    assert "Traceback" not in result.output and "Caught DataError" not in result.output


def test_a_directory_in_use_by_another_run_is_refused(cli, tmp_path):
    """The lock is ``RUN_DIR/.lock`` (flock): a start or a resume while another run holds it gets one line."""
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli(*RUN, "--out", out)
        assert result.exit_code == 4, result.output
        assert _error_lines(result.output) == [
            f"Error: run directory {out} is in use by another mtlx run (it holds {out / '.lock'})"]
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert cli(*RUN, "--out", out).exit_code == 0
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        result = cli(*TOY, "run", "--resume", out, "--epochs", "3")
        assert result.exit_code == 4 and "is in use by another mtlx run" in result.output
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_process_forked_while_a_run_holds_its_directory_does_not_keep_it_locked(tmp_path):
    """A DataLoader worker (or any fork) shares the lock's open file: the run's end must release the lock itself,
    not leave it to the last process that still has the file open."""
    from mtlx import rundir

    out = tmp_path / "run"
    with rundir.claim(out, new=True):
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        child.start()
    try:
        with rundir.claim(out, new=False):
            pass
    finally:
        child.kill()
        child.join()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_exits_130_with_a_message_and_leaves_nothing(tmp_path, sig):
    out, held = tmp_path / "run", tmp_path / "building"
    proc = subprocess.Popen([sys.executable, "-m", "mtlx", *RUN, "-d", "toy-faulty", "-o", f"dataset.hold={held}",
                             "--out", str(out)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not held.exists():
            assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == f"Error: interrupted by {sig.name} during start-up; nothing was written"
    assert not out.exists()


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_no_room_for_a_checkpoint_is_found_before_the_directory_is_made(tmp_path):
    """A file-size limit below one checkpoint's size: exit 4 at once, not after an epoch lost."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mtlx", *RUN, "-o", "arch.channels=64", "--out", str(out)],
                          env=_env(), capture_output=True, text=True, timeout=300, check=False,
                          preexec_fn=_limit_file_size(16 * 1024))
    assert done.returncode == 4, done.stderr
    (line,) = _error_lines(done.stderr)
    assert f"no room for a checkpoint in {out}" in line and "16.0 KiB" in line
    assert not out.exists()


def test_an_output_path_that_cannot_be_a_directory_is_refused_up_front(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli(*RUN, "--out", blocker / "run")
    assert result.exit_code == 4, result.output
    expected = f"Error: cannot create the run directory {blocker / 'run'}: {blocker} is not a directory"
    assert _error_lines(result.output) == [expected]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories: the check cannot fail")
def test_a_read_only_output_directory_is_refused_up_front(cli, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o555)
    result = cli(*RUN, "--out", parent / "run")
    assert result.exit_code == 4, result.output
    assert f"cannot write in {parent}" in result.output and "Traceback" not in result.output
