"""How hard each regulariser pulls on the parameters next to the task losses.

Rep-MTL's regularisers are invariant to the scale of the saliencies, so their
gradients grow like 1/‖S‖ while the task losses' gradients shrink with the
losses: the same λ weighs very differently on different models, losses and
training stages (on the digits model λ = 0.9, the anchor of the paper's
sensitivity study, lets the regularisers outweigh the task losses from the
second step, README). ``‖∇λR‖ / ‖∇Σ w_t L_t‖`` per parameter group is the
number to read when choosing λ; ``balanced`` mode holds it at most ρ at each
estimate of λ, and it drifts with the batches between estimates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtlx.gradients import grad_or_zeros

__all__ = ["flat_grad", "grad_norm", "gradient_balance"]


def flat_grad(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> torch.Tensor:
    """``∂loss/∂params`` as one fp64 vector (the graph is retained; zeros for a loss without a graph)."""
    if not loss.requires_grad:
        return torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=loss.device)
    grads = grad_or_zeros(loss, params, retain_graph=True)
    return torch.cat([g.reshape(-1).double() for g in grads])


def grad_norm(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> torch.Tensor:
    """‖∂loss/∂params‖ over all of ``params`` (the graph is retained; 0 for a loss without a graph)."""
    if not loss.requires_grad:
        return torch.zeros((), device=loss.device)
    grads = grad_or_zeros(loss, params, retain_graph=True)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def gradient_balance(
    task_total: torch.Tensor,
    regularisers: Mapping[str, torch.Tensor],
    groups: Mapping[str, Sequence[nn.Parameter]],
) -> dict[str, float]:
    """``{"grad_ratio.<regulariser>.<group>": ‖∇ reg‖ / ‖∇ task_total‖}`` over each parameter group.

    ``regularisers`` are the weighted terms (λ·R) as they enter the loss; the
    graphs are retained for the step's own backward. A group the task losses
    do not reach (zero gradient) has no ratio and is left out.
    """
    ratios: dict[str, float] = {}
    for group, params in groups.items():
        params = [p for p in params if p.requires_grad]
        if not params:
            continue
        task_norm = grad_norm(task_total, params)
        if float(task_norm) == 0.0:
            continue
        for name, reg in regularisers.items():
            ratios[f"grad_ratio.{name}.{group}"] = float(grad_norm(reg, params) / task_norm)
    return ratios
