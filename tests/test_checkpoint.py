"""Checkpoint files: atomic writes, clear errors for truncated or foreign files."""

from __future__ import annotations

import os
import resource
import signal
import stat

import pytest
import torch

from mtlx import CheckpointError
from mtlx.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    save_checkpoint(tmp_path / "a.pt", {"engine": {"w": torch.arange(3.0)}})
    assert torch.equal(load_checkpoint(tmp_path / "a.pt")["engine"]["w"], torch.arange(3.0))


def test_writer_killed_half_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"engine": {"step": 1}})

    def dies_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")
        raise KeyboardInterrupt  # the writer is interrupted after writing part of the file

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"engine": {"step": 2}})
    monkeypatch.undo()
    assert load_checkpoint(path)["engine"]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_truncated_file_is_a_clear_error_and_is_not_modified(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"engine": {"w": torch.zeros(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot be read.*truncated or not an mtlx checkpoint"):
        load_checkpoint(path)
    assert path.read_bytes() == data[: len(data) // 2]


def test_foreign_and_missing_files(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="is not an mtlx checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_are_written_with_the_users_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "config.toml", "x = 1\n")
        save_checkpoint(tmp_path / "last.pt", {"engine": {}})
    finally:
        os.umask(previous)
    for name in ("config.toml", "last.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_a_write_past_the_disk_or_file_size_limit_is_a_checkpoint_error(tmp_path):
    """RLIMIT_FSIZE makes the write fail with EFBIG, as a full disk does with ENOSPC: one line, nothing left."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"engine": {"step": 1}})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(CheckpointError, match=f"cannot write {path}: File too large") as error:
            save_checkpoint(path, {"engine": {"w": torch.zeros(10_000)}})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert "\n" not in str(error.value)
    assert load_checkpoint(path)["engine"]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
