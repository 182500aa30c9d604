"""Task losses of the PASCAL-Context benchmark (Vandenhende et al.'s ASTMT-derived code, datasets spec section 3).

* semseg, parts: cross-entropy ignoring 255 (``mtlx.losses.classification_loss``);
* saliency: balanced BCE with the HED weight ``#negatives / #pixels`` of the batch;
* edges: balanced BCE with the fixed positive weight 0.95;
* normals: L1 between the L2-normalised prediction and the target over the
  elements that are not 255, divided by their count.

Each is ``(prediction, target) -> scalar``; :func:`scaled` applies a fixed
task weight (the ``paper`` preset's 1/2/5/50/10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mtlx.losses import classification_loss

__all__ = ["balanced_bce", "edge_loss", "label_loss", "normals_l1_loss", "saliency_loss", "scaled"]

IGNORE = 255
EDGE_POS_WEIGHT = 0.95


def balanced_bce(prediction: torch.Tensor, target: torch.Tensor, pos_weight: float | None = None) -> torch.Tensor:
    """``(w Σ_pos -log σ(x) + (1 - w) Σ_neg -log(1 - σ(x))) / #elements`` with ``w = pos_weight``.

    ``pos_weight=None`` takes ``w = #negatives / #elements`` of this batch (HED's automatic balance).
    """
    labels = (target >= 0.5).to(prediction.dtype)
    if pos_weight is None:
        w = (1.0 - labels).sum() / labels.numel()
    else:
        w = torch.tensor(pos_weight, dtype=prediction.dtype, device=prediction.device)
    positive = -(labels * F.logsigmoid(prediction)).sum()
    negative = -((1.0 - labels) * F.logsigmoid(-prediction)).sum()
    return (w * positive + (1.0 - w) * negative) / labels.numel()


def saliency_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Balanced BCE with the per-batch automatic weight."""
    return balanced_bce(prediction, target)


def edge_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Balanced BCE with the fixed positive weight 0.95."""
    return balanced_bce(prediction, target, EDGE_POS_WEIGHT)


def normals_l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |n̂ - n| over target elements != 255, with n̂ the L2-normalised ``[B, 3, H, W]`` prediction."""
    unit = prediction / (prediction.norm(dim=1, keepdim=True) + 1e-12)
    valid = target != IGNORE
    error = torch.where(valid, (unit - target).abs(), torch.zeros_like(unit))
    return error.sum() / valid.sum().clamp_min(1)


def label_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``[B, C, H, W]`` logits against ``[B, H, W]`` labels, 255 ignored."""
    return classification_loss(prediction, target, ignore_index=IGNORE)


def scaled(prediction: torch.Tensor, target: torch.Tensor, *, loss, weight: float) -> torch.Tensor:
    """``weight * loss(prediction, target)``; bind with ``functools.partial`` (picklable, unlike a lambda)."""
    return weight * loss(prediction, target)
