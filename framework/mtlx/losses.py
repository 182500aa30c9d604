"""Task losses shared by the dataset plugins (definitions of the datasets spec).

Each is ``(prediction, target) -> scalar`` and averages over valid elements
only, so an all-ignored batch gives 0 rather than NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["classification_loss", "depth_l1_loss", "mse_loss", "normal_cosine_loss", "segmentation_loss"]


def segmentation_loss(prediction: torch.Tensor, target: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Pixel-wise cross-entropy over ``[B,C,H,W]`` logits, ignoring ``ignore_index``."""
    target = target.long()
    if not (target != ignore_index).any():
        return prediction.sum() * 0.0
    return F.cross_entropy(prediction, target, ignore_index=ignore_index)


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


def classification_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``[B,K]`` logits."""
    return F.cross_entropy(prediction, target.long())


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (standardised regression targets), in the prediction's precision.

    The target is cast first: torch 2.4 and 2.5 fail in the backward of a float64 prediction against a
    float32 target ("Found dtype Float but expected Double").
    """
    return F.mse_loss(prediction.reshape(target.shape), target.to(prediction.dtype))
