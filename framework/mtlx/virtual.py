"""Losses at other parameters: what bilevel strategies (Auto-Lambda) read at a virtual step θ' = θ − α·g.

:func:`losses_at` runs a loss closure (a forward of the model) with some of the model's parameters
replaced by given tensors, through ``torch.func.functional_call``: nothing is written into the model,
so the autograd graph of the step's own forward stays valid, and the result is differentiable w.r.t.
the given tensors. The model's buffers (BatchNorm statistics) are replaced by copies for the call, so a
virtual forward leaves them as they are. Cost: one forward of the closure, plus a copy of the buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

__all__ = ["losses_at"]


class _Closure(nn.Module):
    """Holds ``model`` as a submodule so that ``functional_call`` reparametrises it while ``compute`` runs."""

    def __init__(self, model: nn.Module, compute: Callable[[], Mapping[str, torch.Tensor]]):
        super().__init__()
        self.model = model
        self.compute = compute

    def forward(self) -> dict[str, torch.Tensor]:
        return dict(self.compute())


def losses_at(model: nn.Module, compute: Callable[[], Mapping[str, torch.Tensor]],
              params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``compute()`` with ``model``'s parameters named in ``params`` (``model.named_parameters()`` names) replaced.

    ``compute`` must reach the parameters through ``model``'s modules (their ``forward``), as a model's
    forward does; a closure that reads a parameter object directly would see the unreplaced value.
    """
    unknown = sorted(set(params) - {n for n, _ in model.named_parameters()})
    if unknown:
        raise KeyError(f"losses_at: {unknown[:3]} are not parameters of the model")
    replaced = {f"model.{n}": t for n, t in params.items()}
    buffers = {f"model.{n}": b.clone() for n, b in model.named_buffers()}
    return torch.func.functional_call(_Closure(model, compute), {**replaced, **buffers}, (), strict=False)
