"""Losses against hand computations."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mtlx_pascal.losses import balanced_bce, edge_loss, label_loss, normals_l1_loss, saliency_loss, scaled


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_balanced_bce_with_fixed_positive_weight():
    x = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    pos = -(_log_sigmoid(2.0) + _log_sigmoid(-3.0))
    neg = -(_log_sigmoid(1.0) + _log_sigmoid(-0.5))  # log(1 - σ(x)) = log σ(-x)
    expected = (0.95 * pos + 0.05 * neg) / 4
    assert float(edge_loss(x, y)) == pytest.approx(expected, rel=1e-6)


def test_balanced_bce_automatic_weight_is_the_negative_fraction():
    x = torch.tensor([1.0, -2.0, 0.0, 3.0])
    y = torch.tensor([1.0, 0.0, 0.0, 0.0])  # w = 3/4
    pos = -_log_sigmoid(1.0)
    neg = -(_log_sigmoid(2.0) + _log_sigmoid(0.0) + _log_sigmoid(-3.0))
    assert float(saliency_loss(x, y)) == pytest.approx((0.75 * pos + 0.25 * neg) / 4, rel=1e-6)


def test_balanced_bce_is_stable_for_large_logits():
    x = torch.tensor([100.0, -100.0])
    loss = balanced_bce(x, torch.tensor([0.0, 1.0]), 0.5)
    assert math.isfinite(float(loss)) and float(loss) == pytest.approx((0.5 * 100 + 0.5 * 100) / 2)


def test_normals_l1_ignores_255_and_normalises_the_prediction():
    pred = torch.tensor([[3.0, 0.0], [0.0, 0.0], [4.0, 2.0]]).view(1, 3, 1, 2)  # (3,0,4) and (0,0,2)
    target = torch.tensor([[0.0, 255.0], [0.0, 255.0], [1.0, 255.0]]).view(1, 3, 1, 2)
    # pixel 0: |0.6-0| + |0-0| + |0.8-1| = 0.8 over 3 valid elements; pixel 1 ignored
    assert float(normals_l1_loss(pred, target)) == pytest.approx(0.8 / 3, rel=1e-6)


def test_normals_l1_of_an_all_ignored_batch_is_zero_with_a_gradient():
    pred = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = normals_l1_loss(pred, torch.full((1, 3, 2, 2), 255.0))
    loss.backward()
    assert float(loss.detach()) == 0 and pred.grad is not None


def test_label_loss_is_cross_entropy_over_non_255_pixels():
    logits = torch.randn(2, 21, 3, 3)
    target = torch.randint(0, 21, (2, 3, 3))
    target[0, 0] = 255
    valid = target != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    torch.testing.assert_close(label_loss(logits, target), expected)


def test_scaled_multiplies_the_loss():
    x, y = torch.tensor([0.3, -0.2]), torch.tensor([1.0, 0.0])
    weighted = partial(scaled, loss=edge_loss, weight=50.0)
    torch.testing.assert_close(weighted(x, y), 50.0 * edge_loss(x, y))
