"""An mtlx strategy in a plain PyTorch training loop: no engine, no mtlx model class.

A two-task model of your own (a shared encoder, a segmentation and a regression head) on random data,
trained with Rep-MTL (or any installed strategy: ``python train.py mgda``) through ``mtlx.MTL``; the
strategy's state goes into your checkpoint next to the model's and the optimiser's.

    python examples/own-loop/train.py [STRATEGY] [STEPS]
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn import functional as F

import mtlx


def main(strategy: str = "rep-mtl", steps: int = 20) -> dict[str, float]:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    heads = nn.ModuleDict({"seg": nn.Conv2d(16, 4, 1), "depth": nn.Conv2d(16, 1, 1)})
    mtl = mtlx.MTL(strategy, tasks=["seg", "depth"], shared=encoder, heads=heads)
    optimizer = torch.optim.Adam([*encoder.parameters(), *heads.parameters(), *mtl.parameters()], lr=1e-2)
    x = torch.randn(8, 3, 16, 16)
    targets = {"seg": torch.randint(0, 4, (8, 16, 16)), "depth": torch.rand(8, 1, 16, 16)}

    def forward() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = encoder(x)
        return z, {"seg": F.cross_entropy(heads["seg"](z), targets["seg"]),
                   "depth": F.l1_loss(heads["depth"](z), targets["depth"])}

    losses = {}
    for step in range(steps):
        z, losses = forward()
        optimizer.zero_grad()
        # .grad of encoder, heads (and strategy parameters); FAMO re-reads the losses after the step
        mtl.backward(losses, features=z, recompute_losses=lambda: forward()[1])
        optimizer.step()
        mtl.step()
        if (step + 1) % 10 == 0:
            mtl.end_epoch()                   # per-epoch strategies (DWA, GradNorm) see the epoch's mean losses
    checkpoint = {"encoder": encoder.state_dict(), "heads": heads.state_dict(),
                  "optimizer": optimizer.state_dict(), "mtl": mtl.state_dict()}
    torch.save(checkpoint, "/dev/null")
    final = {t: float(v) for t, v in losses.items()}
    print(f"{strategy}: final losses {final}")
    return final


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "rep-mtl", int(sys.argv[2]) if len(sys.argv) > 2 else 20)
