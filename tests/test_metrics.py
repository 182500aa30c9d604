"""The core's meters (accuracy, MAE) and Delta_m against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mtlx.losses import classification_loss
from mtlx.metrics import AccuracyMeter, MAEMeter, delta_m


def test_accuracy_and_mae():
    acc = AccuracyMeter()
    acc.update(torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]]), torch.tensor([0, 1, 1]))
    assert acc.compute()["acc"] == pytest.approx(2 / 3)
    mae = MAEMeter(scale=10.0)
    mae.update(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0]))
    assert mae.compute()["mae"] == pytest.approx(10 * 1.5 / 2)
    assert mae.details() == {}


def test_accuracy_per_pixel_leaves_out_the_ignore_label():
    """``[1, 2, 2, 2]`` logits predict ``[[1, 0], [0, 1]]``; labels ``[[1, 1], [-1, 1]]``: 2 of 3 labelled right."""
    logits = torch.tensor([[[[0.0, 3.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 2.0]]]])
    acc = AccuracyMeter()
    acc.update(logits, torch.tensor([[[1, 1], [-1, 1]]]))
    assert acc.compute()["acc"] == pytest.approx(2 / 3)
    acc.update(logits, torch.full((1, 2, 2), -1))  # nothing labelled: counts nothing
    assert acc.compute()["acc"] == pytest.approx(2 / 3)
    other = AccuracyMeter(ignore_index=255)
    other.update(logits, torch.tensor([[[1, 0], [255, 255]]]))
    assert other.compute()["acc"] == 1.0


def test_classification_loss_averages_over_the_labelled_elements():
    """Per sample and per pixel; the ignored -1 drops out of the mean, and an all-ignored batch gives 0."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]], requires_grad=True)
    by_hand = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert classification_loss(logits, torch.tensor([0, 1, -1])).item() == pytest.approx(by_hand)
    per_pixel = logits.T.reshape(1, 2, 3, 1)  # the same three predictions as pixels of one image
    assert classification_loss(per_pixel, torch.tensor([[[0], [1], [-1]]])).item() == pytest.approx(by_hand)
    empty = classification_loss(logits, torch.full((3,), -1))
    assert empty.item() == 0.0
    empty.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_delta_m_libmtl_docstring_example():
    """B = {A: [96, 98], B: [0.2]}, N = {A: [93, 99], B: [0.5]}, w = {A: [1, 0], B: [1]}."""
    base = {"A": {"m1": 96.0, "m2": 98.0}, "B": {"m1": 0.2}}
    new = {"A": {"m1": 93.0, "m2": 99.0}, "B": {"m1": 0.5}}
    hib = {"A": {"m1": True, "m2": False}, "B": {"m1": True}}
    a = ((93 - 96) / 96 - (99 - 98) / 98) / 2
    b = (0.5 - 0.2) / 0.2
    assert delta_m(new, base, hib, "task") == pytest.approx(100 * (a + b) / 2)
    flat = [(93 - 96) / 96, -(99 - 98) / 98, (0.5 - 0.2) / 0.2]
    assert delta_m(new, base, hib, "metric") == pytest.approx(100 * sum(flat) / 3)
    assert delta_m(base, base, hib, "task") == 0.0
    assert delta_m(base, base, hib, "metric") == 0.0


NYU_KEYS = {
    "seg": ["miou", "pixacc"],
    "depth": ["abs", "rel"],
    "normal": ["mean", "median", "t11", "t22", "t30"],
}
NYU_HIB = {"seg": [True, True], "depth": [False, False], "normal": [False, False, True, True, True]}


def _nyu(values):
    out, i = {}, 0
    for task, keys in NYU_KEYS.items():
        out[task] = dict(zip(keys, values[i : i + len(keys)]))
        i += len(keys)
    return out


@pytest.mark.parametrize(
    ("row", "task_value", "metric_value"),
    [
        ([53.93, 75.53, 0.3825, 0.1577, 23.57, 17.01, 35.04, 60.99, 72.05], -1.78, -3.85),
        ([54.59, 76.04, 0.3750, 0.1542, 21.91, 15.28, 38.37, 64.72, 75.05], 1.70, 0.95),
    ],
)
def test_delta_m_reproduces_rep_mtl_nyuv2_table(row, task_value, metric_value):
    """Rep-MTL paper Table 1 (EW and Rep-MTL rows) from the per-metric numbers, to ±0.05."""
    stl = _nyu([53.50, 75.39, 0.3926, 0.1605, 21.99, 15.16, 39.04, 65.00, 75.16])
    hib = {t: dict(zip(NYU_KEYS[t], NYU_HIB[t])) for t in NYU_KEYS}
    assert delta_m(_nyu(row), stl, hib, "task") == pytest.approx(task_value, abs=0.05)
    assert delta_m(_nyu(row), stl, hib, "metric") == pytest.approx(metric_value, abs=0.05)


def test_delta_m_conventions_differ_by_weighting_and_reject_bad_input():
    stl = _nyu([50, 70, 0.4, 0.16, 22, 15, 39, 65, 75])
    row = _nyu([50, 70, 0.4, 0.16, 24, 17, 35, 61, 72])  # only normals worse
    hib = {t: dict(zip(NYU_KEYS[t], NYU_HIB[t])) for t in NYU_KEYS}
    per_task, per_metric = delta_m(row, stl, hib, "task"), delta_m(row, stl, hib, "metric")
    assert per_task < 0 and per_metric < 0
    assert per_metric == pytest.approx(per_task * 3 * 5 / 9)  # normals weigh 1/3 vs 5/9
    with pytest.raises(ValueError, match="convention"):
        delta_m(row, stl, hib, "flat")
    with pytest.raises(KeyError, match="depth"):
        delta_m({"seg": row["seg"], "normal": row["normal"]}, stl, hib)
