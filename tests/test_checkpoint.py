"""Checkpoint files: atomic writes, clear errors for truncated or foreign files."""

from __future__ import annotations

import pytest
import torch

from mtlx import CheckpointError
from mtlx.checkpoint import load_checkpoint, save_checkpoint


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
