"""The Lightning example trains, takes the plain loop's steps, and its checkpoint carries the strategy's state."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

L = pytest.importorskip("lightning", reason="lightning is a dev requirement (requirements-dev.txt)")
# Lightning 2.6's own use of a torch API deprecated in 2.13; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated")

EXAMPLE = runpy.run_path(str(Path(__file__).parents[1] / "train.py"))
OWN_LOOP = runpy.run_path(str(Path(__file__).parents[2] / "own-loop" / "train.py"))


@pytest.mark.parametrize("strategy", ["rep-mtl", "mgda", "dwa", "famo"])
def test_the_example_trains(strategy):
    first = EXAMPLE["main"](strategy, steps=1)
    last = EXAMPLE["main"](strategy, steps=20)
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    assert sum(last.values()) < sum(first.values())


@pytest.mark.parametrize("strategy", ["ew", "mgda", "rep-mtl"])
def test_lightning_takes_the_same_steps_as_the_plain_loop(strategy):
    """Same model, data order and strategy: Lightning's manual optimisation and a plain loop give equal weights."""
    torch.manual_seed(0)
    module = EXAMPLE["MultiTaskModule"](strategy)
    twin = EXAMPLE["MultiTaskModule"](strategy)
    twin.load_state_dict(module.state_dict())
    loader = EXAMPLE["data"](batches=3)
    trainer = L.Trainer(max_steps=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, loader)
    optimizer = twin.configure_optimizers()
    for batch in loader:
        z, losses = twin.losses(batch)
        optimizer.zero_grad()
        twin.mtl.backward(losses, features=z, recompute_losses=lambda b=batch: twin.losses(b)[1])
        optimizer.step()
        twin.mtl.step()
    for (name, p), q in zip(module.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_the_checkpoint_holds_the_strategy_state(tmp_path):
    EXAMPLE["main"]("dwa", steps=20, default_root_dir=str(tmp_path))
    (checkpoint,) = tmp_path.rglob("*.ckpt")
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["mtl"]["epoch"] == 2  # two epochs of 10 steps ended
    restored = EXAMPLE["MultiTaskModule"]("dwa")
    restored.on_load_checkpoint(saved)
    assert restored.mtl.state_dict()["epoch"] == 2
