"""A run directory written before the dense support left the core still resumes, exactly.

``data/resume-2026-12-07`` holds a fake 8x8 NYUv2 release (2 train, 1 val sample) and ``run/``: the first of
4 steps of an augmented EW run (tiny CNN, ``--max-steps 1``) as ``mtlx run`` wrote it on 2026-12-07, while the
release reader, augmentation, losses and meters were still ``mtlx.dense``, ``mtlx.augment``, ``mtlx.losses``
and ``mtlx.metrics``. Nothing in it names those modules (the checkpoint is plain tensors and values, loaded
with ``weights_only=True``), so resuming it with today's code must continue it as if it had never stopped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mtlx.checkpoint import load_checkpoint

SAVED = Path(__file__).parent / "data" / "resume-2026-12-07"
ARGS = (
    "--dataset", "nyuv2", "--data-root", "data", "--backbone", "digits-cnn", "--head", "conv", "--device", "cpu",
    "-q", "-o", "backbone.channels=4", "-o", "head.hidden_channels=4", "--strategy", "ew", "--epochs", "2",
    "--batch-size", "1", "-o", "dataset.augment=true", "--threads", "1",
)  # fmt: skip  (the arguments the saved run was started with)


def test_the_saved_names_no_module_of_the_dense_support():
    """The checkpoint and the records hold names of components and handlers, never a module the move renamed."""
    run = SAVED / "run"
    texts = [(run / name).read_text() for name in ("config.toml", "results.json", "metrics.jsonl")]
    texts.append(repr(load_checkpoint(run / "last.pt")))
    moved = ("mtlx.dense", "mtlx.augment", "mtlx.losses", "mtlx.metrics", "mtlx.testing.dense")
    assert not [name for name in moved for text in texts if name in text]


def test_a_run_saved_before_the_move_resumes_to_the_uninterrupted_run(mtlx_cli, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    shutil.copytree(SAVED, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)  # the saved config records the relative data root "data"
    resumed = mtlx_cli("run", "--resume", "run", "-q", "-o", "train.max_steps=1000")
    assert resumed.exit_code == 0, resumed.output
    full = mtlx_cli("run", *ARGS, "--out", "full")
    assert full.exit_code == 0, full.output
    state = {name: load_checkpoint(Path(name) / "last.pt")["engine"] for name in ("run", "full")}
    assert state["run"]["state"]["iteration"] == state["full"]["state"]["iteration"] == 4
    saved, today = state["run"]["model"], state["full"]["model"]
    assert saved.keys() == today.keys() and all(torch.equal(saved[k], today[k]) for k in saved)
