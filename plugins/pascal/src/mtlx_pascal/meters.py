"""Meters of the PASCAL-Context benchmark (ASTMT/MTI-Net definitions, datasets spec section 3).

* :class:`PascalSegmentationMeter`: :class:`mtlx_dense.SegmentationMeter`
  with ``absent="zero"`` (a class that never occurs has IoU 0 and still
  counts, ``TP / max(TP+FP+FN, 1e-8)``); for human parts, images whose valid
  ground truth is only background are skipped as in the file-based
  evaluation the papers report.
* :class:`SaliencyMeter`: per-image precision, recall and Jaccard at 15
  thresholds ``linspace(0.2, 0.9, 15)`` of ``sigmoid(logit)``, averaged over
  images; ``maxf`` = max over thresholds of ``2PR/(P+R)`` of the mean P, R;
  ``miou`` = max over thresholds of the mean Jaccard.
* :class:`PascalNormalMeter`: :class:`mtlx_dense.NormalMeter`'s angular
  error on pixels whose target is not 255, with its histogram median in
  0.01-degree bins (within 0.01 deg of the true median without keeping
  5105 x 512² errors), plus the RMSE.
* :class:`EdgeMeter`: ODS F-measure of the BSDS/SEISM ``fb`` protocol (see
  :mod:`mtlx_pascal.boundaries` and the README for how it relates to SEISM).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
from skimage.morphology import thin

from mtlx.interfaces import Meter
from mtlx_dense import NormalMeter, SegmentationMeter

from .boundaries import match_boundaries

__all__ = ["SALIENCY_THRESHOLDS", "EdgeMeter", "PascalNormalMeter", "PascalSegmentationMeter", "SaliencyMeter"]

IGNORE = 255
SALIENCY_THRESHOLDS = tuple(np.linspace(0.2, 0.9, 15).tolist())


class PascalSegmentationMeter(SegmentationMeter):
    """mIoU with absent classes counted as IoU 0 (ASTMT), optionally skipping background-only images."""

    def __init__(self, num_classes: int, skip_background_only: bool = False):
        super().__init__(num_classes, absent="zero")
        self.skip_background_only = skip_background_only

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if self.skip_background_only:
            flat = target.reshape(target.shape[0], -1)
            informative = ((flat != IGNORE) & (flat != 0)).any(1)
            prediction, target = prediction[informative], target[informative]
        if target.shape[0]:
            super().update(prediction, target)


class SaliencyMeter(Meter):
    """maxF and mIoU of binary saliency over thresholds of the predicted probability (per-image averages)."""

    higher_is_better: ClassVar[Mapping[str, bool]] = {"maxf": True, "miou": True}

    def __init__(self, thresholds: tuple[float, ...] = SALIENCY_THRESHOLDS):
        self.thresholds = torch.tensor(thresholds, dtype=torch.float64)
        self.reset()

    def reset(self) -> None:
        #: rows: Σ precision, Σ recall, Σ Jaccard over images, per threshold; plus the image count
        self.sums = torch.zeros(3, len(self.thresholds), dtype=torch.float64)
        self.images = torch.zeros(1, dtype=torch.float64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        prob = torch.sigmoid(prediction.detach().double()).reshape(prediction.shape[0], 1, -1).cpu()
        gt = (target.detach().reshape(target.shape[0], 1, -1) > 0.5).cpu()
        pred = prob > self.thresholds.view(1, -1, 1)  # [B, K, N]
        tp = (pred & gt).sum(-1).double()
        fp = (pred & ~gt).sum(-1).double()
        fn = (~pred & gt).sum(-1).double()
        union = tp + fp + fn
        jaccard = torch.where(union > 0, tp / union.clamp_min(1), torch.ones_like(tp))  # both empty: 1
        precision = tp / (tp + fp + 1e-12)
        recall = tp / (tp + fn + 1e-12)
        self.sums += torch.stack([precision.sum(0), recall.sum(0), jaccard.sum(0)])
        self.images += prediction.shape[0]

    def merge(self, other: Meter) -> None:
        self.sums += other.sums
        self.images += other.images

    def compute(self) -> dict[str, float]:
        n = float(self.images)
        if n == 0:
            return dict.fromkeys(self.higher_is_better, math.nan)
        precision, recall, jaccard = self.sums / n
        f = 2 * precision * recall / (precision + recall + 1e-12)
        return {"maxf": float(f.max()), "miou": float(jaccard.max())}


class PascalNormalMeter(NormalMeter):
    """Angular error of normals where the target is not 255: mean, rmse, median (0.01 deg bins), within-t."""

    higher_is_better: ClassVar[Mapping[str, bool]] = {"mean": False, "rmse": False, **NormalMeter.higher_is_better}

    def __init__(self) -> None:
        super().__init__(aggregation="global", median="histogram", bin_width=0.01)

    def reset(self) -> None:
        super().reset()
        self.squares = torch.zeros(1, dtype=torch.float64)  # Σ err²

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        invalid = (target == IGNORE).any(1, keepdim=True)
        err = self.angular_error(prediction, target.masked_fill(invalid, 0.0))
        self.accumulate(err)
        self.squares += (err**2).sum()

    def merge(self, other: Meter) -> None:
        super().merge(other)
        self.squares += other.squares

    def compute(self) -> dict[str, float]:
        out = super().compute()
        rmse = math.sqrt(float(self.squares) / self.count) if self.count else math.nan
        return {key: rmse if key == "rmse" else out[key] for key in self.higher_is_better}


class EdgeMeter(Meter):
    """Optimal-dataset-scale F-measure of edge probabilities (BSDS/SEISM ``fb``, one ground truth).

    At each threshold t the prediction ``sigmoid(x) >= t`` is thinned (as
    SEISM's ``bwmorph(..., 'thin', inf)``) and matched one-to-one to the
    thinned ground truth within ``max_dist`` x diagonal; matched and total
    pixels are summed over the split; ``odsf`` is the best F over thresholds.
    """

    higher_is_better: ClassVar[Mapping[str, bool]] = {"odsf": True, "ods_precision": True, "ods_recall": True}

    def __init__(self, num_thresholds: int = 99, max_dist: float = 0.0075, thin_prediction: bool = True):
        self.thresholds = np.linspace(0.01, 0.99, num_thresholds) if num_thresholds > 1 else np.array([0.5])
        self.max_dist, self.thin_prediction = max_dist, thin_prediction
        self.reset()

    def reset(self) -> None:
        #: rows: matched, predicted, ground-truth pixels; one column per threshold
        self.counts = torch.zeros(3, len(self.thresholds), dtype=torch.float64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        prob = torch.sigmoid(prediction.detach().float()).reshape(-1, *prediction.shape[-2:]).cpu().numpy()
        gts = (target.detach().reshape(-1, *target.shape[-2:]) >= 0.5).cpu().numpy()
        for p, gt in zip(prob, gts, strict=True):
            self.counts += torch.from_numpy(self._image_counts(p, thin(gt)))

    def merge(self, other: Meter) -> None:
        self.counts += other.counts

    def _image_counts(self, prob: np.ndarray, gt: np.ndarray) -> np.ndarray:
        counts = np.zeros((3, len(self.thresholds)))
        counts[2] = gt.sum()
        for k, t in enumerate(self.thresholds):
            edges = prob >= t
            if not edges.any():
                break  # higher thresholds keep nothing either
            if self.thin_prediction:
                edges = thin(edges)
            result = match_boundaries(edges, gt, self.max_dist)
            counts[0, k], counts[1, k] = result.matched, result.predicted
        return counts

    def compute(self) -> dict[str, float]:
        matched, predicted, ground_truth = self.counts
        if float(ground_truth.sum()) == 0 and float(predicted.sum()) == 0:
            return dict.fromkeys(self.higher_is_better, math.nan)
        # SEISM's conventions for empty sets: no ground truth -> R = 1, P = 0; no prediction -> R = 0, P = 1
        recall = torch.where(ground_truth > 0, matched / ground_truth.clamp_min(1), torch.ones_like(matched))
        precision = torch.where(predicted > 0, matched / predicted.clamp_min(1), torch.ones_like(matched))
        precision = torch.where(ground_truth > 0, precision, torch.zeros_like(precision))
        f = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(recall))
        best = int(f.argmax())
        return {"odsf": float(f[best]), "ods_precision": float(precision[best]), "ods_recall": float(recall[best])}
