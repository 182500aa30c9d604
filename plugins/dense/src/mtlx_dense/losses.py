"""Losses of the dense regression tasks (datasets spec): each averages over valid pixels only, so an all-invalid
batch gives 0 rather than NaN. Segmentation is per-pixel classification: :func:`mtlx.losses.classification_loss`
(cross-entropy ignoring -1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["depth_l1_loss", "normal_cosine_loss"]


def depth_l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 over pixels with valid (non-zero) depth: ``Σ|p-t|·mask / #valid``."""
    mask = (target.sum(1, keepdim=True) != 0).to(prediction.dtype)
    count = mask.sum() * prediction.shape[1]
    return ((prediction - target).abs() * mask).sum() / count.clamp_min(1.0)


def normal_cosine_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − mean cosine`` over valid pixels (target not all zero); prediction L2-normalised."""
    pred = F.normalize(prediction, dim=1)
    mask = (target.abs().sum(1, keepdim=True) != 0).to(prediction.dtype)
    return 1.0 - (pred * target * mask).sum() / mask.sum().clamp_min(1.0)
