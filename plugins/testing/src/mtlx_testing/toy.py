"""A tiny per-pixel multi-task problem: two or more regression/classification tasks on a small conv net."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtlx.engine.step import forward, task_losses
from mtlx.interfaces import EncoderHeads, MultiTaskModel, StepContext, TaskSpec
from mtlx.losses import classification_loss, mse_loss
from mtlx.metrics import AccuracyMeter, MAEMeter

__all__ = ["EncoderHeads", "ToyModel", "make_step", "toy_batch", "toy_tasks"]


def toy_tasks(num_tasks: int = 3, num_classes: int = 4) -> dict[str, TaskSpec]:
    """``num_tasks`` per-pixel tasks alternating classification (``seg0``, -1 ignored) and regression (``reg1``)."""
    tasks = {}
    for i in range(num_tasks):
        if i % 2 == 0:
            tasks[f"seg{i}"] = TaskSpec(
                name=f"seg{i}", kind="classification", out_channels=num_classes, dense=True,
                loss=classification_loss, meter=AccuracyMeter,
            )
        else:
            tasks[f"reg{i}"] = TaskSpec(
                name=f"reg{i}", kind="regression", out_channels=1, dense=True, loss=mse_loss, meter=MAEMeter
            )
    return tasks


class ToyModel(EncoderHeads):
    """Shared 2-layer conv encoder (Z: ``[B, C, H, W]``) and a 1x1-conv head per task."""

    def __init__(self, tasks: Mapping[str, TaskSpec], in_channels: int = 3, channels: int = 8, vector: bool = False):
        super().__init__(tasks)
        if vector:
            self.encoder = nn.Sequential(nn.Linear(in_channels, channels), nn.Tanh(), nn.Linear(channels, channels))
            self.heads = nn.ModuleDict({t: nn.Linear(channels, s.out_channels) for t, s in tasks.items()})
        else:
            self.encoder = nn.Sequential(
                nn.Conv2d(in_channels, channels, 3, padding=1), nn.Tanh(), nn.Conv2d(channels, channels, 3, padding=1)
            )
            self.heads = nn.ModuleDict(
                {
                    t: nn.Sequential(nn.Tanh(), nn.Conv2d(channels, s.out_channels, 1))
                    for t, s in tasks.items()
                }
            )


def toy_batch(
    tasks: Mapping[str, TaskSpec], batch_size: int = 4, size: int = 6, in_channels: int = 3, seed: int = 0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Random inputs and targets for :func:`toy_tasks` (class targets include ignored pixels, -1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, in_channels, size, size, generator=g)
    targets = {}
    for name, spec in tasks.items():
        if spec.kind == "classification":
            t = torch.randint(0, spec.out_channels, (batch_size, size, size), generator=g)
            t[:, 0, 0] = -1
            targets[name] = t
        else:
            targets[name] = torch.randn(batch_size, spec.out_channels, size, size, generator=g)
    return x, targets


def make_step(
    model: MultiTaskModel,
    x: torch.Tensor,
    targets: Mapping[str, torch.Tensor],
    tasks: Mapping[str, TaskSpec],
    *,
    iteration: int = 0,
    epoch: int = 0,
    transform: str = "none",
    grad_method: str = "auto",
    extra_batches: Sequence[tuple[torch.Tensor, Mapping[str, torch.Tensor]]] = (),
    heldout_batch: tuple[torch.Tensor, Mapping[str, torch.Tensor]] | None = None,
    learning_rate: float | None = None,
) -> StepContext:
    """Forward ``x`` exactly as the engine does and return the step context a strategy sees (at ``iteration``
    of ``epoch``, both 0-based as the engine counts them); ``extra_batches``: the step's batches 1..k-1 of a
    strategy with ``batches_per_step = k``; ``heldout_batch``: the held-out batch of a strategy with a
    ``heldout_split``, forwarded when the strategy calls ``heldout_losses``; ``learning_rate``: the optimiser's.
    ``train_losses`` (``x`` forwarded again, with graph) is always set: cheap until a strategy calls it."""
    preds, rep = forward(model, x)
    reforward = lambda: task_losses(forward(model, x)[0], targets, tasks, transform)
    losses = task_losses(preds, targets, tasks, transform)
    extras = [forward(model, ex) for ex, _ in extra_batches]
    heldout = None
    if heldout_batch is not None:
        hx, ht = heldout_batch
        heldout = lambda: task_losses(forward(model, hx)[0], ht, tasks, transform)
    return StepContext(
        model=model, losses=losses, representation=rep, iteration=iteration, epoch=epoch,
        recompute_losses=torch.no_grad()(reforward), grad_method=grad_method,
        extra_losses=[task_losses(p, t, tasks, transform) for (p, _), (_, t) in zip(extras, extra_batches, strict=True)],
        extra_representations=[z for _, z in extras], heldout_losses=heldout, train_losses=reforward,
        learning_rate=learning_rate,
    )
