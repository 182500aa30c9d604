"""An mtlx strategy in a Lightning ``LightningModule`` with manual optimisation.

The same two-task model as examples/own-loop (a shared encoder, a segmentation and a depth head) on
random data. Lightning owns the loop, devices and checkpoints; ``mtlx.MTL`` only computes the ``.grad``
the strategy asks for, so the module switches Lightning's automatic optimisation off and calls
``mtl.backward`` instead of ``self.manual_backward``. The strategy's state is saved in Lightning's
checkpoints (``on_save_checkpoint`` / ``on_load_checkpoint``).

    python examples/lightning/train.py [STRATEGY] [STEPS]
"""

from __future__ import annotations

import sys

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

import mtlx


class MultiTaskModule(L.LightningModule):
    def __init__(self, strategy: str = "rep-mtl", lr: float = 1e-2, steps_per_epoch: int = 10):
        super().__init__()
        self.automatic_optimization = False  # mtlx writes the gradients
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.heads = nn.ModuleDict({"seg": nn.Conv2d(16, 4, 1), "depth": nn.Conv2d(16, 1, 1)})
        self.mtl = mtlx.MTL(strategy, tasks=["seg", "depth"], shared=self.encoder, heads=self.heads)
        self.lr = lr
        self.final_losses: dict[str, float] = {}

    def losses(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, seg, depth = batch
        z = self.encoder(x)
        return z, {"seg": F.cross_entropy(self.heads["seg"](z), seg), "depth": F.l1_loss(self.heads["depth"](z), depth)}

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        optimizer = self.optimizers()
        z, losses = self.losses(batch)
        optimizer.zero_grad()
        self.mtl.backward(losses, features=z, recompute_losses=lambda: self.losses(batch)[1])
        optimizer.step()
        self.mtl.step()
        self.log_dict({f"loss/{t}": v.detach() for t, v in losses.items()}, on_step=True)
        self.final_losses = {t: float(v.detach()) for t, v in losses.items()}

    def on_train_epoch_end(self) -> None:
        self.mtl.end_epoch()  # per-epoch strategies (DWA, GradNorm) see the epoch's mean losses

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([*self.encoder.parameters(), *self.heads.parameters(), *self.mtl.parameters()],
                                lr=self.lr)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mtl"] = self.mtl.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.mtl.load_state_dict(checkpoint["mtl"])


def data(batches: int = 10, seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    n = 8 * batches
    x = torch.randn(n, 3, 16, 16, generator=g)
    seg = torch.randint(0, 4, (n, 16, 16), generator=g)
    depth = torch.rand(n, 1, 16, 16, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, seg, depth), batch_size=8)


def main(strategy: str = "rep-mtl", steps: int = 20, default_root_dir: str | None = None) -> dict[str, float]:
    torch.manual_seed(0)
    module = MultiTaskModule(strategy)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=default_root_dir is not None,
                        default_root_dir=default_root_dir)
    trainer.fit(module, data())
    print(f"{strategy}: final losses {module.final_losses}")
    return module.final_losses


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "rep-mtl", int(sys.argv[2]) if len(sys.argv) > 2 else 20)
