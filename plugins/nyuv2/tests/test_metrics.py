"""The nyuv2 tasks' losses and meters on hand-built predictions, and Delta_m against the stored baselines.

Expected values are computed by hand in the comments; the meters themselves
live in mtlx-dense (this checks that the dataset wires the right ones with
the right options, and that they match datasets.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mtlx.metrics import delta_m
from mtlx_nyuv2.dataset import NYUV2_BASELINES, NYUv2


@pytest.fixture
def tasks(nyuv2_root: Path):
    return NYUv2(NYUv2.Config(), nyuv2_root).tasks


def _one_hot_logits(ids: list[list[int]], classes: int = 13) -> torch.Tensor:
    return F.one_hot(torch.tensor(ids), classes).permute(2, 0, 1)[None].float() * 5.0


# gt    [[0, 0, 1], [1, -1, 2]]      pred [[0, 1, 1], [1, 0, 5]]
# valid pixels 5; confusion (gt, pred): (0,0)=1 (0,1)=1 (1,1)=2 (2,5)=1
# IoU0 = 1/(2+1-1) = 1/2, IoU1 = 2/(2+3-2) = 2/3, IoU2 = 0/1, IoU5 = 0/1, others 0/0 (absent)
SEG_GT = torch.tensor([[[0, 0, 1], [1, -1, 2]]])
SEG_PRED = _one_hot_logits([[0, 1, 1], [1, 0, 5]])


def test_segmentation_miou_skips_absent_classes_and_ignores_minus_one(tasks) -> None:
    meter = tasks["segmentation"].meter()
    meter.update(SEG_PRED[..., :2], SEG_GT[..., :2])  # two batches accumulate into one confusion matrix
    meter.update(SEG_PRED[..., 2:], SEG_GT[..., 2:])
    result = meter.compute()
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 3 + 0 + 0) / 4)
    assert result["pixacc"] == pytest.approx(3 / 5)


def test_segmentation_nan_convention_of_the_reference_code(nyuv2_root: Path) -> None:
    meter = NYUv2(NYUv2.Config(absent_classes="nan"), nyuv2_root).tasks["segmentation"].meter()
    meter.update(SEG_PRED, SEG_GT)
    assert math.isnan(meter.compute()["miou"])


def test_segmentation_zero_convention_counts_absent_classes(nyuv2_root: Path) -> None:
    meter = NYUv2(NYUv2.Config(absent_classes="zero"), nyuv2_root).tasks["segmentation"].meter()
    meter.update(SEG_PRED, SEG_GT)
    assert meter.compute()["miou"] == pytest.approx((1 / 2 + 2 / 3) / 13)  # 9 absent classes count as 0


def test_segmentation_loss_averages_cross_entropy_over_labelled_pixels(tasks) -> None:
    logits = torch.randn(1, 13, 2, 3, generator=torch.Generator().manual_seed(0))
    log_p = logits.log_softmax(1)[0]
    valid = [(r, c) for r in range(2) for c in range(3) if SEG_GT[0, r, c] >= 0]
    expected = -sum(log_p[SEG_GT[0, r, c], r, c] for r, c in valid) / len(valid)
    torch.testing.assert_close(tasks["segmentation"].loss(logits, SEG_GT), expected)


# sample 0: gt [2, 0, 4]  pred [3, 7, 2] -> valid errors 1, 2        rel 1/2, 2/4
# sample 1: gt [1, 1, 2]  pred [1.5, 2, 2] -> errors 0.5, 1, 0       rel 0.5, 1, 0
DEPTH_GT = torch.tensor([[[[2.0, 0.0, 4.0]]], [[[1.0, 1.0, 2.0]]]])
DEPTH_PRED = torch.tensor([[[[3.0, 7.0, 2.0]]], [[[1.5, 2.0, 2.0]]]])


def test_depth_errors_over_valid_pixels_global_and_batch(nyuv2_root: Path, tasks) -> None:
    meter = tasks["depth"].meter()
    for b in range(2):
        meter.update(DEPTH_PRED[b : b + 1], DEPTH_GT[b : b + 1])
    assert meter.compute() == pytest.approx({"abs_err": 4.5 / 5, "rel_err": 2.5 / 5})  # every valid pixel alike
    batch = NYUv2(NYUv2.Config(metric_aggregation="batch"), nyuv2_root).tasks["depth"].meter()
    for b in range(2):
        batch.update(DEPTH_PRED[b : b + 1], DEPTH_GT[b : b + 1])
    # per-batch means: abs (1.5, 0.5), rel (0.5, 0.5)
    assert batch.compute() == pytest.approx({"abs_err": 1.0, "rel_err": 0.5})
    torch.testing.assert_close(tasks["depth"].loss(DEPTH_PRED, DEPTH_GT), torch.tensor(4.5 / 5))


def _normals(angles_deg: list[float | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions at the given angles from gt (0, 0, 1), scaled by 2; None = an invalid (all-zero) gt pixel."""
    pred, gt = [], []
    for a in angles_deg:
        t = math.radians(a if a is not None else 33.0)
        pred.append([2 * math.sin(t), 0.0, 2 * math.cos(t)])
        gt.append([0.0, 0.0, 1.0] if a is not None else [0.0, 0.0, 0.0])
    as_map = lambda v: torch.tensor(v).T.reshape(1, 3, 1, len(angles_deg))
    return as_map(pred), as_map(gt)


BATCHES = [[10.0, None, 20.0, 40.0], [5.0, 50.0]]


def test_normal_statistics_true_median_vs_mean_of_batch_medians(nyuv2_root: Path, tasks) -> None:
    meter = tasks["normal"].meter()
    batch = NYUv2(NYUv2.Config(metric_aggregation="batch"), nyuv2_root).tasks["normal"].meter()
    for angles in BATCHES:
        pred, gt = _normals(angles)
        meter.update(pred, gt)
        batch.update(pred, gt)
    # all valid errors: 5, 10, 20, 40, 50
    assert meter.compute() == pytest.approx(
        {"mean": 25.0, "median": 20.0, "within_11.25": 2 / 5, "within_22.5": 3 / 5, "within_30": 3 / 5}, abs=1e-6
    )
    # per batch: (10, 20, 40) and (5, 50): medians 20 and 27.5, means 70/3 and 27.5
    assert batch.compute() == pytest.approx(
        {
            "mean": (70 / 3 + 27.5) / 2,
            "median": (20 + 27.5) / 2,
            "within_11.25": (1 / 3 + 1 / 2) / 2,
            "within_22.5": (2 / 3 + 1 / 2) / 2,
            "within_30": (2 / 3 + 1 / 2) / 2,
        },
        abs=1e-6,
    )


def test_normal_histogram_median_option(nyuv2_root: Path) -> None:
    meter = NYUv2(NYUv2.Config(normal_median="histogram"), nyuv2_root).tasks["normal"].meter()
    for angles in BATCHES:
        meter.update(*_normals(angles))
    result = meter.compute()
    assert result.pop("median") == pytest.approx(20.0, abs=0.01)  # one 0.01-degree bin around the true median
    assert result == pytest.approx({"mean": 25.0, "within_11.25": 2 / 5, "within_22.5": 3 / 5, "within_30": 3 / 5})


def test_normal_loss_is_one_minus_mean_cosine_over_valid_pixels(tasks) -> None:
    pred, gt = _normals(BATCHES[0])
    expected = 1 - sum(math.cos(math.radians(a)) for a in (10, 20, 40)) / 3
    torch.testing.assert_close(tasks["normal"].loss(pred, gt), torch.tensor(expected))


def test_metric_directions(tasks) -> None:
    directions = {t: dict(type(s.meter()).higher_is_better) for t, s in tasks.items()}
    assert directions == {
        "segmentation": {"miou": True, "pixacc": True},
        "depth": {"abs_err": False, "rel_err": False},
        "normal": {"mean": False, "median": False, "within_11.25": True, "within_22.5": True, "within_30": True},
    }


def _paper_row(miou, pixacc, abs_err, rel_err, mean, median, t11, t22, t30):
    """A row of the Rep-MTL paper's Table 1 (percent where the paper prints percent) in meter units."""
    return {
        "segmentation": {"miou": miou / 100, "pixacc": pixacc / 100},
        "depth": {"abs_err": abs_err, "rel_err": rel_err},
        "normal": {
            "mean": mean,
            "median": median,
            "within_11.25": t11 / 100,
            "within_22.5": t22 / 100,
            "within_30": t30 / 100,
        },
    }


@pytest.mark.parametrize(
    ("row", "task_avg", "metric_avg"),
    [
        (_paper_row(53.93, 75.53, 0.3825, 0.1577, 23.57, 17.01, 35.04, 60.99, 72.05), -1.78, -3.85),  # EW
        (_paper_row(54.59, 76.04, 0.3750, 0.1542, 21.91, 15.28, 38.37, 64.72, 75.05), +1.70, +0.95),  # Rep-MTL
    ],
)
def test_delta_m_reproduces_the_paper_against_the_stored_deeplab_baseline(tasks, nyuv2_root, row, task_avg, metric_avg):
    dataset = NYUv2(NYUv2.Config(), nyuv2_root)
    baseline = dataset.baseline()
    assert baseline["segmentation"]["miou"] == pytest.approx(0.5350)  # stored in percent, served as a fraction
    assert baseline["normal"]["mean"] == pytest.approx(21.99)  # degrees are never rescaled
    directions = {t: type(s.meter()).higher_is_better for t, s in tasks.items()}
    assert delta_m(row, baseline, directions, "task") == pytest.approx(task_avg, abs=0.05)
    assert delta_m(row, baseline, directions, "metric") == pytest.approx(metric_avg, abs=0.05)
    assert delta_m(baseline, baseline, directions, "task") == 0.0


def test_baseline_choice(nyuv2_root: Path) -> None:
    segnet = NYUv2(NYUv2.Config(baseline="segnet"), nyuv2_root).baseline()
    assert segnet["segmentation"] == {"miou": 0.3830, "pixacc": 0.6376}
    assert segnet["normal"]["within_30"] == 0.6915
    assert NYUV2_BASELINES["segnet"].aggregation == "batch" and NYUV2_BASELINES["deeplabv3plus"].aggregation == "global"
    assert NYUv2(NYUv2.Config(baseline="none"), nyuv2_root).baseline() is None
