"""Meters of dense (per-pixel) tasks, accumulated over a whole split (datasets spec).

Confusion-matrix mIoU and pixel accuracy, depth abs/rel error over valid
pixels, and surface-normal angular error (median over all valid pixels, exact
or from a fine histogram, or the batch-averaged convention of the MTAN/Nash-MTL
code). The meters every kind of task needs (accuracy, MAE) and Delta_m stay in
:mod:`mtlx.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mtlx import Meter

__all__ = ["DepthMeter", "NormalMeter", "SegmentationMeter"]


class SegmentationMeter(Meter):
    """mIoU and pixel accuracy from a confusion matrix accumulated over the split.

    Only pixels with ``0 <= target < num_classes`` count (so ``-1`` and ``255``
    ignore labels drop out). A class absent from both targets and predictions
    over the whole split has IoU 0/0; ``absent`` says what that means:

    * ``"skip"`` (default): the mean runs over the classes that occur (LibMTL-style ``nanmean``);
    * ``"nan"``: the IoU is NaN and propagates into the mean, as the MTAN reference code does;
    * ``"zero"``: the IoU is 0 and still counts in the mean (ASTMT / MTI-Net on PASCAL-Context,
      ``TP / max(TP + FP + FN, eps)``), so a model is not rewarded for classes it never sees.

    :meth:`per_class_iou` gives the IoU of every class (for per-class tables,
    e.g. the 19 GTA5 -> Cityscapes classes); it is not in :meth:`compute`,
    whose metrics all enter Delta_m and model selection.
    """

    higher_is_better: ClassVar[Mapping[str, bool]] = {"miou": True, "pixacc": True}
    absent_policies: ClassVar[tuple[str, ...]] = ("skip", "nan", "zero")

    def __init__(self, num_classes: int, absent: str = "skip"):
        if absent not in self.absent_policies:
            raise ValueError(f"absent must be one of {', '.join(map(repr, self.absent_policies))}, got {absent!r}")
        self.num_classes, self.absent = num_classes, absent
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.float64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        pred = prediction.argmax(1) if prediction.dim() == target.dim() + 1 else prediction
        pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
        valid = (target >= 0) & (target < self.num_classes)
        index = target[valid] * self.num_classes + pred[valid]
        self.confusion += torch.bincount(index, minlength=self.num_classes**2).reshape(self.num_classes, -1).double()

    def merge(self, other: Meter) -> None:
        self.confusion += other.confusion

    def per_class_iou(self) -> torch.Tensor:
        """IoU of each class, ``[num_classes]`` float64: NaN for absent classes, or 0 with ``absent="zero"``."""
        c = self.confusion
        tp = c.diag()
        union = c.sum(0) + c.sum(1) - tp
        iou = tp / union  # 0/0 -> nan for absent classes
        return iou.nan_to_num(nan=0.0) if self.absent == "zero" else iou

    def details(self) -> dict[str, Any]:
        """``{"per_class_iou": [...]}`` in class order (NaN = absent, unless ``absent="zero"``)."""
        return {"per_class_iou": self.per_class_iou().tolist()}

    def compute(self) -> dict[str, float]:
        iou = self.per_class_iou()
        miou = iou.nanmean() if self.absent == "skip" else iou.mean()
        total = self.confusion.sum()
        return {"miou": float(miou), "pixacc": float(self.confusion.diag().sum() / total) if total > 0 else math.nan}


class DepthMeter(Meter):
    """Absolute and relative depth error over valid pixels (target > 0 / not ignored).

    ``aggregation="global"`` weighs every valid pixel of the split equally
    (LibMTL); ``"batch"`` averages per-batch means (MTAN, Nash-MTL, FAMO).
    """

    higher_is_better: ClassVar[Mapping[str, bool]] = {"abs_err": False, "rel_err": False}

    def __init__(self, aggregation: str = "global"):
        if aggregation not in ("global", "batch"):
            raise ValueError(f"aggregation must be 'global' or 'batch', got {aggregation!r}")
        self.aggregation = aggregation
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64)  # abs, rel, count (or batches)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = prediction.detach().double().cpu(), target.detach().double().cpu()
        valid = target > 0
        if target.dim() == 4:  # [B,1,H,W] masks come from the channel sum
            valid = target.sum(1, keepdim=True) > 0
        err = (pred - target).abs()[valid]
        rel = err / target[valid]
        if self.aggregation == "global":
            self.sums += torch.stack([err.sum(), rel.sum(), torch.tensor(float(err.numel()), dtype=torch.float64)])
        elif err.numel():
            self.sums += torch.stack([err.mean(), rel.mean(), torch.tensor(1.0, dtype=torch.float64)])

    def merge(self, other: Meter) -> None:
        self.sums += other.sums  # sums and a count: per pixel ("global") or per batch ("batch")

    def compute(self) -> dict[str, float]:
        n = float(self.sums[2])
        if n == 0:
            return {"abs_err": math.nan, "rel_err": math.nan}
        return {"abs_err": float(self.sums[0]) / n, "rel_err": float(self.sums[1]) / n}


class NormalMeter(Meter):
    """Angular error (degrees) of surface normals over valid pixels (target not all zero).

    Reports mean, median and the fractions within 11.25, 22.5 and 30 degrees.
    Predictions are L2-normalised first. ``aggregation="batch"`` averages
    per-batch statistics, incl. the per-batch median (MTAN, Nash-MTL, FAMO);
    ``aggregation="global"`` takes them over every valid pixel of the split
    (LibMTL), with the median computed one of two ways:

    * ``median="exact"`` keeps every error for the true median; memory grows
      with the split (NYUv2's 654 test images of 288x384: ~72M errors, ~0.6 GB).
    * ``median="histogram"`` counts errors in ``bin_width``-degree bins over
      [0, 180] (18,000 bins by default: 144 kB whatever the split) and places
      each of the middle values uniformly within its bin. Each lies in the same
      bin as the true value, so the reported median is within ``bin_width`` of
      the true median. Mean and thresholds stay exact.
    """

    higher_is_better: ClassVar[Mapping[str, bool]] = {
        "mean": False,
        "median": False,
        "within_11.25": True,
        "within_22.5": True,
        "within_30": True,
    }
    _thresholds = (11.25, 22.5, 30.0)

    def __init__(self, aggregation: str = "global", median: str = "exact", bin_width: float = 0.01):
        if aggregation not in ("global", "batch"):
            raise ValueError(f"aggregation must be 'global' or 'batch', got {aggregation!r}")
        if median not in ("exact", "histogram"):
            raise ValueError(f"median must be 'exact' or 'histogram', got {median!r}")
        if median == "histogram" and aggregation == "batch":
            raise ValueError(
                "median='histogram' needs aggregation='global' (the per-batch medians of 'batch' are exact "
                "and need no more memory than one batch)"
            )
        if not 0 < bin_width <= 180:
            raise ValueError(f"bin_width must be in (0, 180] degrees, got {bin_width!r}")
        self.aggregation, self.median, self.bin_width = aggregation, median, float(bin_width)
        self.reset()

    def reset(self) -> None:
        self.errors: list[torch.Tensor] = []
        self.batch_stats: list[torch.Tensor] = []
        if self.median == "histogram":
            self.histogram = torch.zeros(math.ceil(180.0 / self.bin_width), dtype=torch.float64)
            #: Σ error, then the count below each threshold
            self.sums = torch.zeros(1 + len(self._thresholds), dtype=torch.float64)

    @staticmethod
    def angular_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Degrees between normalised prediction and target at valid pixels, flattened."""
        valid = target.abs().sum(1) > 0
        pred = F.normalize(prediction.detach().double(), dim=1)
        cos = (pred * target.double()).sum(1).clamp(-1, 1)
        return torch.rad2deg(torch.acos(cos[valid])).cpu()

    def _stats(self, err: torch.Tensor) -> torch.Tensor:
        within = [(err < t).double().mean() for t in self._thresholds]
        return torch.stack([err.mean(), _true_median(err), *within])

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        self.accumulate(self.angular_error(prediction, target))

    def accumulate(self, errors: torch.Tensor) -> None:
        """Add the angular errors (degrees, 1-D) of one batch's valid pixels.

        For subclasses that select valid pixels another way (e.g. a 255 ignore value).
        """
        if self.aggregation == "batch":
            if errors.numel():
                self.batch_stats.append(self._stats(errors))
        elif self.median == "exact":
            self.errors.append(errors)
        else:
            bins = (errors / self.bin_width).long().clamp_(0, len(self.histogram) - 1)
            self.histogram += torch.bincount(bins, minlength=len(self.histogram)).double()
            within = [(errors < t).sum() for t in self._thresholds]
            self.sums += torch.stack([errors.sum(), *within]).double()

    def merge(self, other: Meter) -> None:
        self.errors.extend(other.errors)
        self.batch_stats.extend(other.batch_stats)
        if self.median == "histogram":
            self.histogram += other.histogram
            self.sums += other.sums

    @property
    def count(self) -> int:
        """Valid pixels added so far (batches with valid pixels for ``aggregation="batch"``)."""
        if self.aggregation == "batch":
            return len(self.batch_stats)
        if self.median == "exact":
            return sum(e.numel() for e in self.errors)
        return int(self.histogram.sum())

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return dict.fromkeys(self.higher_is_better, math.nan)
        if self.aggregation == "batch":
            stats = torch.stack(self.batch_stats).mean(0)
        elif self.median == "exact":
            stats = self._stats(torch.cat(self.errors))
        else:
            total, *within = (self.sums / self.count).tolist()
            stats = torch.tensor([total, self._histogram_median(), *within], dtype=torch.float64)
        return dict(zip(NormalMeter.higher_is_better, (float(v) for v in stats), strict=True))

    def _histogram_median(self) -> float:
        """Mean of the two middle values (one for an odd count), each placed uniformly within its bin.

        The value of rank r (1-based) in bin k holding values ranked F+1..F+h
        is estimated as ``(k + (r - F - 1/2) / h) * bin_width``: inside the
        bin, hence within ``bin_width`` of the true value.
        """
        cumulative = self.histogram.cumsum(0)
        n = int(cumulative[-1])
        ranks = torch.tensor([(n + 1) // 2, n // 2 + 1], dtype=torch.float64)  # equal for odd n
        bins = torch.searchsorted(cumulative, ranks)  # first bin whose cumulative count reaches the rank
        before = torch.where(bins > 0, cumulative[(bins - 1).clamp_min(0)], torch.zeros_like(ranks))
        values = (bins + (ranks - before - 0.5) / self.histogram[bins]) * self.bin_width
        return float(values.mean())


def _true_median(values: torch.Tensor) -> torch.Tensor:
    """Median that averages the two middle values of an even count (numpy's; torch.median takes the lower)."""
    ordered = values.sort().values
    n = ordered.numel()
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
