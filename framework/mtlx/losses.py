"""Task losses every kind of task needs (definitions of the datasets spec).

Each is ``(prediction, target) -> scalar``. Losses of dense tasks (depth,
surface normals) are the mtlx-dense library's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["classification_loss", "mse_loss"]


def classification_loss(prediction: torch.Tensor, target: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Cross-entropy of ``[B, K, ...]`` logits (per sample or per pixel), averaged over the targets that are not
    ``ignore_index``; an all-ignored batch gives 0 rather than NaN."""
    target = target.long()
    if not (target != ignore_index).any():
        return prediction.sum() * 0.0
    return F.cross_entropy(prediction, target, ignore_index=ignore_index)


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (standardised regression targets), in the prediction's precision.

    The target is cast first: torch 2.4 and 2.5 fail in the backward of a float64 prediction against a
    float32 target ("Found dtype Float but expected Double").
    """
    return F.mse_loss(prediction.reshape(target.shape), target.to(prediction.dtype))
