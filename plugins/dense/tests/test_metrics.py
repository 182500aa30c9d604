"""The dense meters against hand-computed values: mIoU and pixel accuracy, depth errors, normal angles."""

from __future__ import annotations

import math

import pytest
import torch

from mtlx_dense import DepthMeter, NormalMeter, SegmentationMeter


def test_segmentation_miou_with_absent_class_and_ignore():
    """Confusion over 3 classes; class 2 never occurs; -1 pixels are ignored."""
    target = torch.tensor([[0, 0, 1, 1, -1]])
    pred = torch.tensor([[0, 1, 1, 1, 2]])
    meter = SegmentationMeter(3)
    meter.update(pred, target)
    # class 0: tp 1, union 2 -> 0.5 ; class 1: tp 2, union 3 -> 2/3 ; class 2: 0/0 -> skipped
    out = meter.compute()
    assert out["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert out["pixacc"] == pytest.approx(3 / 4)
    nan_meter = SegmentationMeter(3, absent="nan")
    nan_meter.update(pred, target)
    assert math.isnan(nan_meter.compute()["miou"])
    details = meter.details()["per_class_iou"]
    assert details[:2] == pytest.approx([0.5, 2 / 3]) and math.isnan(details[2])


def test_segmentation_accumulates_over_batches_from_logits():
    meter = SegmentationMeter(2)
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1, 0, 1] = 1.0  # predicts [0, 1]
    meter.update(logits, torch.tensor([[[0, 0]]]))
    meter.update(logits, torch.tensor([[[1, 1]]]))
    # confusion: gt0->pred0 1, gt0->pred1 1, gt1->pred0 1, gt1->pred1 1 ; IoU each = 1/3
    assert meter.compute()["miou"] == pytest.approx(1 / 3)
    assert meter.compute()["pixacc"] == pytest.approx(0.5)


def test_segmentation_absent_policies_and_per_class_iou():
    """Four classes; class 2 appears only on an ignored pixel and class 3 nowhere: both are absent.

    Confusion over valid pixels (rows gt, cols pred): gt0 -> [2, 1, 0, 0], gt1 -> [1, 3, 0, 0]
    IoU0 = 2 / (3 + 3 - 2) = 1/2, IoU1 = 3 / (4 + 4 - 3) = 3/5.
    """
    target = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 255]])
    pred = torch.tensor([[0, 0, 1, 0, 1, 1, 1, 2]])
    results = {}
    for absent in ("skip", "nan", "zero"):
        meter = SegmentationMeter(4, absent=absent)
        meter.update(pred[:, :4], target[:, :4])
        meter.update(pred[:, 4:], target[:, 4:])
        results[absent] = (meter.per_class_iou().tolist(), meter.compute())
    iou, out = results["skip"]
    assert iou[:2] == pytest.approx([1 / 2, 3 / 5]) and math.isnan(iou[2]) and math.isnan(iou[3])
    assert out == pytest.approx({"miou": (1 / 2 + 3 / 5) / 2, "pixacc": 5 / 7})
    iou, out = results["nan"]
    assert math.isnan(iou[3]) and math.isnan(out["miou"]) and out["pixacc"] == pytest.approx(5 / 7)
    iou, out = results["zero"]
    assert iou == pytest.approx([1 / 2, 3 / 5, 0.0, 0.0])
    assert out == pytest.approx({"miou": (1 / 2 + 3 / 5) / 4, "pixacc": 5 / 7})


def test_segmentation_zero_policy_keeps_a_predicted_but_absent_class_at_zero():
    """A class predicted but never in the targets has IoU 0 (not absent) under every policy."""
    meter = SegmentationMeter(3, absent="skip")
    meter.update(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 1]))
    # IoU0 = 1/1, IoU1 = 1/2 (gt 2, pred 1, tp 1), IoU2 = 0/1; nothing absent
    assert meter.per_class_iou().tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert meter.compute()["miou"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="absent must be one of 'skip', 'nan', 'zero', got 'ignore'"):
        SegmentationMeter(3, absent="ignore")


def test_depth_errors_skip_invalid_pixels():
    target = torch.tensor([[[[2.0, 4.0, 0.0]]]])
    pred = torch.tensor([[[[1.0, 5.0, 9.0]]]])
    meter = DepthMeter()
    meter.update(pred, target)
    out = meter.compute()
    assert out["abs_err"] == pytest.approx(1.0)
    assert out["rel_err"] == pytest.approx((1 / 2 + 1 / 4) / 2)


def test_depth_batch_aggregation_differs_from_global():
    g, b = DepthMeter("global"), DepthMeter("batch")
    for meter in (g, b):
        meter.update(torch.tensor([[[[1.0, 1.0, 1.0]]]]), torch.tensor([[[[2.0, 2.0, 2.0]]]]))  # 3 px err 1
        meter.update(torch.tensor([[[[1.0]]]]), torch.tensor([[[[4.0]]]]))  # 1 px err 3
    assert g.compute()["abs_err"] == pytest.approx(6 / 4)
    assert b.compute()["abs_err"] == pytest.approx((1 + 3) / 2)


def test_normals_true_median_thresholds_and_invalid():
    # angles 0, 90, 45, 20 degrees in the xy-plane; one invalid all-zero pixel
    angles = torch.tensor([0.0, 90.0, 45.0, 20.0])
    rad = torch.deg2rad(angles)
    pred = torch.stack([torch.cos(rad), torch.sin(rad), torch.zeros(4)]) * 3.0  # unnormalised on purpose
    target = torch.tensor([[1.0, 0, 0]] * 4).T
    pred = torch.cat([pred, torch.tensor([[1.0], [0], [0]])], 1).reshape(1, 3, 1, 5)
    target = torch.cat([target, torch.zeros(3, 1)], 1).reshape(1, 3, 1, 5)
    meter = NormalMeter()
    meter.update(pred, target)
    out = meter.compute()
    assert out["mean"] == pytest.approx(155 / 4, abs=1e-4)
    assert out["median"] == pytest.approx((20 + 45) / 2, abs=1e-4)  # even count: mean of the middle two
    assert out["within_11.25"] == pytest.approx(1 / 4)
    assert out["within_22.5"] == pytest.approx(2 / 4)
    assert out["within_30"] == pytest.approx(2 / 4)


def _random_normals(seed: int, shape: tuple[int, ...] = (4, 3, 16, 16), invalid_rows: int = 2):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(*shape, generator=g)
    target = torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=1)
    target[:, :, :invalid_rows] = 0.0
    return pred, target


@pytest.mark.parametrize("bin_width", [0.01, 0.5, 7.0])
def test_normals_histogram_median_is_within_one_bin_of_the_true_median(bin_width):
    for seed in range(4):
        exact, binned = NormalMeter(), NormalMeter(median="histogram", bin_width=bin_width)
        for batch in range(3):  # odd and even totals: 3 batches of 4*3*14*16 valid pixels, then one more pixel
            pred, target = _random_normals(seed * 10 + batch)
            exact.update(pred, target)
            binned.update(pred, target)
        if seed % 2:
            pred, target = _random_normals(seed, (1, 3, 1, 1), invalid_rows=0)
            exact.update(pred, target)
            binned.update(pred, target)
        a, b = exact.compute(), binned.compute()
        assert binned.count == exact.count == 3 * 4 * 14 * 16 + seed % 2
        assert abs(b["median"] - a["median"]) <= bin_width
        assert {k: v for k, v in b.items() if k != "median"} == pytest.approx(
            {k: v for k, v in a.items() if k != "median"}, rel=1e-12
        )
    assert len(NormalMeter(median="histogram").histogram) == 18000  # fixed memory: 180 / 0.01 bins


def test_normals_histogram_median_by_hand():
    """Errors 1.2, 1.7, 3.5, 3.6 degrees in 1-degree bins: bin 1 holds ranks 1-2, bin 3 ranks 3-4.

    Rank 2 sits at 1 + (2 - 0 - 0.5) / 2 = 1.75, rank 3 at 3 + (3 - 2 - 0.5) / 2 = 3.25: median 2.5
    (true median 2.6). With 5.0 added the middle rank 3 alone gives 3.25 (true 3.5).
    """
    meter = NormalMeter(median="histogram", bin_width=1.0)
    meter.accumulate(torch.tensor([1.2, 3.5, 1.7, 3.6], dtype=torch.float64))
    out = meter.compute()
    assert out["median"] == pytest.approx(2.5)
    assert out["mean"] == pytest.approx(10.0 / 4)
    assert out["within_11.25"] == 1.0
    meter.accumulate(torch.tensor([5.0], dtype=torch.float64))
    assert meter.compute()["median"] == pytest.approx(3.25)
    meter.reset()
    assert meter.count == 0 and math.isnan(meter.compute()["median"])
    meter.accumulate(torch.tensor([180.0, 0.0], dtype=torch.float64))  # 180 falls in the last bin
    assert meter.compute()["median"] == pytest.approx((0.5 + 179.5) / 2)


def test_normals_median_options_are_checked():
    with pytest.raises(ValueError, match="median must be 'exact' or 'histogram', got 'approx'"):
        NormalMeter(median="approx")
    with pytest.raises(ValueError, match="median='histogram' needs aggregation='global'"):
        NormalMeter(aggregation="batch", median="histogram")
    with pytest.raises(ValueError, match=r"bin_width must be in \(0, 180\] degrees, got 0"):
        NormalMeter(median="histogram", bin_width=0)
