"""Meter values against hand computations (and mtlx's NormalMeter for the angular errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.sparse.csgraph import maximum_bipartite_matching

from mtlx_dense import NormalMeter
from mtlx_pascal.boundaries import disk_offsets, match_boundaries
from mtlx_pascal.meters import EdgeMeter, PascalNormalMeter, PascalSegmentationMeter, SaliencyMeter


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# -- segmentation ---------------------------------------------------------------------


def test_absent_class_counts_as_iou_zero():
    meter = PascalSegmentationMeter(3)
    target = torch.tensor([[0, 0, 1, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 2]])  # class 2 predicted only on an ignored pixel: absent everywhere
    meter.update(pred, target)
    # IoU0 = 1/2, IoU1 = 2/3, IoU2 = 0 (0 / max(0, 1e-8)); the mean counts all three
    assert meter.compute()["miou"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert meter.compute()["pixacc"] == pytest.approx(3 / 4)


def test_parts_meter_skips_images_whose_valid_truth_is_only_background():
    meter = PascalSegmentationMeter(2, skip_background_only=True)
    target = torch.tensor([[[0, 0], [255, 0]], [[1, 0], [0, 255]]])
    pred = torch.tensor([[[1, 1], [1, 1]], [[1, 1], [0, 0]]])
    meter.update(pred, target)
    # image 0 (only background and ignore) is skipped; image 1: class1 IoU 1/2, class0 IoU 1/2
    assert meter.compute()["miou"] == pytest.approx(0.5)
    plain = PascalSegmentationMeter(2)
    plain.update(pred, target)
    assert plain.compute()["miou"] != pytest.approx(0.5)


# -- saliency -------------------------------------------------------------------------


def test_saliency_maxf_and_miou_over_thresholds_match_hand_computation():
    probs = torch.tensor([[0.95, 0.52, 0.62, 0.1], [0.32, 0.1, 0.1, 0.1]])
    logits = torch.tensor([[_logit(p) for p in row] for row in probs.tolist()]).view(2, 1, 1, 4)
    target = torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 0]]).view(2, 1, 1, 4)
    meter = SaliencyMeter()
    meter.update(logits[:1], target[:1])
    meter.update(logits[1:], target[1:])
    # thresholds 0.20, 0.25, ..., 0.90; per threshold mean over the two images:
    #   t <= 0.30: P = (2/3 + 0)/2, R = (1 + 0)/2, J = (2/3 + 0)/2      F = 0.4
    #   0.35..0.50: P = 1/3, R = 1/2, J = (2/3 + 1)/2 = 5/6 (empty vs empty = 1)
    #   0.55, 0.60: P = (1/2 + 0)/2, R = 1/4, J = (1/3 + 1)/2         F = 1/4
    #   >= 0.65:    P = 1/2, R = 1/4, J = (1/2 + 1)/2                F = 1/3
    result = meter.compute()
    assert result["maxf"] == pytest.approx(0.4, abs=1e-9)
    assert result["miou"] == pytest.approx(5 / 6, abs=1e-9)


def test_saliency_meter_does_not_depend_on_batching():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 1, 5, 5), (torch.rand(6, 1, 5, 5) > 0.6).float()
    whole, split = SaliencyMeter(), SaliencyMeter()
    whole.update(logits, target)
    for i in range(0, 6, 2):
        split.update(logits[i : i + 2], target[i : i + 2])
    assert whole.compute() == pytest.approx(split.compute())


# -- normals --------------------------------------------------------------------------


def _vec(deg: float) -> list[float]:
    a = math.radians(deg)
    return [math.sin(a), 0.0, math.cos(a)]


def test_normal_meter_hand_computed_angles_and_ignored_pixels():
    # targets all (0, 0, 1); predictions at 0, 90 and 60 degrees; a fourth pixel is 255 (ignored)
    pred = torch.tensor([_vec(0), _vec(90), [2 * v for v in _vec(60)], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 4)
    target = torch.tensor([[0.0, 0.0, 1.0]] * 3 + [[255.0] * 3]).T.reshape(1, 3, 1, 4)
    meter = PascalNormalMeter()
    meter.update(pred, target)
    out = meter.compute()
    assert out["mean"] == pytest.approx(50.0, abs=1e-5)
    assert out["rmse"] == pytest.approx(math.sqrt((0 + 90**2 + 60**2) / 3), abs=1e-5)
    assert out["median"] == pytest.approx(60.0, abs=0.01)
    assert (out["within_11.25"], out["within_22.5"], out["within_30"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_normal_meter_agrees_with_mtlx_normal_meter_on_random_data():
    torch.manual_seed(1)
    pred = torch.randn(4, 3, 8, 8)
    target = torch.nn.functional.normalize(torch.randn(4, 3, 8, 8), dim=1)
    invalid = torch.rand(4, 1, 8, 8) < 0.2
    ours, reference = PascalNormalMeter(), NormalMeter()
    ours.update(pred, target.masked_fill(invalid, 255.0))
    reference.update(pred, target.masked_fill(invalid, 0.0))
    a, b = ours.compute(), reference.compute()
    assert a["mean"] == pytest.approx(b["mean"], rel=1e-12)
    assert a["median"] == pytest.approx(b["median"], abs=0.01)
    for key in ("within_11.25", "within_22.5", "within_30"):
        assert a[key] == pytest.approx(b[key], rel=1e-12)


# -- edges ----------------------------------------------------------------------------


def test_disk_offsets_of_radius_one_are_the_four_neighbours_and_the_centre():
    dy, dx = disk_offsets(1.0607)
    assert sorted(zip(dy.tolist(), dx.tolist(), strict=True)) == [(-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)]


def test_matching_is_one_to_one_within_the_distance():
    gt = np.zeros((100, 100), dtype=bool)
    gt[:, 50] = True
    pred = np.zeros_like(gt)
    pred[:, 49] = pred[:, 51] = True  # two candidates for every ground-truth pixel
    counts = match_boundaries(pred, gt, 0.0075)  # tolerance 0.0075 * 141.4 = 1.06 px
    assert (counts.matched, counts.predicted) == (100, 200)
    far = np.zeros_like(gt)
    far[:, 52] = True  # 2 px away: beyond the tolerance
    assert match_boundaries(far, gt, 0.0075).matched == 0


def _shifted_boundary_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth: column 50. Prediction: column 51 (shifted by one pixel) on rows 0-79 and column 53 on
    rows 80-99 at p = 0.955, plus a stray line (column 10, rows 0-19) at p = 0.655."""
    gt = torch.zeros(100, 100)
    gt[:, 50] = 1
    prob = torch.full((100, 100), 0.001)
    prob[:80, 51] = 0.955
    prob[80:, 53] = 0.955
    prob[:20, 10] = 0.655
    return torch.logit(prob.double()).float().view(1, 1, 100, 100), gt.view(1, 1, 100, 100)


def test_edge_ods_f_on_a_boundary_shifted_by_one_pixel():
    logits, gt = _shifted_boundary_case()
    meter = EdgeMeter()
    meter.update(logits, gt)
    # tolerance 1.06 px: the shifted column matches, column 53 does not.
    #   t <= 0.65: P = 80/120, R = 80/100 -> F = 0.727;  0.66 <= t <= 0.95: P = R = 0.8 -> F = 0.8;
    #   t >= 0.96: nothing predicted -> P = 1, R = 0, F = 0.   ODS F = 0.8
    result = meter.compute()
    assert result == pytest.approx({"odsf": 0.8, "ods_precision": 0.8, "ods_recall": 0.8})
    f = _f_per_threshold(meter)
    assert f[10] == pytest.approx(2 * (2 / 3) * 0.8 / (2 / 3 + 0.8))  # t = 0.11
    assert f[98] == 0.0


def _f_per_threshold(meter: EdgeMeter) -> list[float]:
    matched, predicted, gt = meter.counts.tolist()
    out = []
    for m, p, g in zip(matched, predicted, gt, strict=True):
        precision, recall = (m / p if p else 1.0), m / g
        out.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return out


def test_edge_meter_sums_counts_over_images_before_the_f_measure():
    logits, gt = _shifted_boundary_case()
    perfect = torch.logit(gt.double().clamp(0.001, 0.999)).float()
    meter = EdgeMeter(num_thresholds=9)
    meter.update(torch.cat([logits, perfect]), torch.cat([gt, gt]))
    # at t = 0.745 (in the 0.66-0.95 range): matched 80 + 100, predicted 100 + 100, ground truth 200 -> F = 0.9
    assert meter.compute()["odsf"] == pytest.approx(0.9)


def test_edge_meter_thins_thick_predictions():
    gt = torch.zeros(1, 1, 100, 100)
    gt[..., 50] = 1
    thick = torch.full((1, 1, 100, 100), -8.0)
    thick[..., 10:90, 49:52] = 8.0  # a 3-pixel wide band around the boundary, rows 10-89
    thinned, raw = EdgeMeter(num_thresholds=1), EdgeMeter(num_thresholds=1, thin_prediction=False)
    thinned.update(thick, gt)
    raw.update(thick, gt)
    assert thinned.compute()["ods_precision"] == pytest.approx(1.0)
    # unthinned: 240 predicted pixels, 80 matched in their own rows plus the two band ends matched to the
    # ground-truth pixels just above and below the band (1 px away)
    assert raw.compute()["ods_precision"] == pytest.approx(82 / 240)


def test_matching_size_equals_scipy_hopcroft_karp_on_random_maps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pred, gt = rng.random((40, 60)) < 0.15, rng.random((40, 60)) < 0.15
        counts = match_boundaries(pred, gt, 0.03)  # tolerance 2.16 px
        py, px = np.nonzero(pred)
        gy, gx = np.nonzero(gt)
        d2 = (py[:, None] - gy[None]) ** 2 + (px[:, None] - gx[None]) ** 2
        graph = scipy.sparse.csr_matrix(d2 <= (0.03 * math.hypot(40, 60)) ** 2)
        expected = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
        assert counts.matched == expected
