"""Flip, rotation, scale and the fixed resize against independent index computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtlx_pascal.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Geometry,
    _theta,
    finish_normals,
    normalise_image,
    random_geometry,
    sampling_grid,
    transform_normals,
    warp,
)


def _warp(values: torch.Tensor, geometry: Geometry, size: int, **kwargs) -> torch.Tensor:
    return warp(values, sampling_grid(geometry, values.shape[1], values.shape[2], size), **kwargs)


def test_sampling_grid_equals_affine_grid():
    for geometry in (Geometry(), Geometry(flip=True, scale=1.2, angle=17.0)):
        theta = _theta(geometry, 40, 48).unsqueeze(0)
        expected = torch.nn.functional.affine_grid(theta, [1, 1, 32, 32], align_corners=False)
        torch.testing.assert_close(sampling_grid(geometry, 40, 48, 32), expected)


def _nearest_resize(values: torch.Tensor, size: int) -> torch.Tensor:
    """Output pixel i takes input pixel floor((i + 0.5) * n / size) (pixel-centre nearest)."""
    _, h, w = values.shape
    rows = ((torch.arange(size) + 0.5) * h / size).floor().long()
    cols = ((torch.arange(size) + 0.5) * w / size).floor().long()
    return values[:, rows][:, :, cols]


def test_identity_geometry_is_a_nearest_resize():
    values = torch.randint(0, 21, (1, 40, 48)).float()
    np.testing.assert_array_equal(_warp(values, Geometry(), 64, mode="nearest"), _nearest_resize(values, 64))


def test_identity_cubic_resize_to_the_same_size_is_exact():
    values = torch.rand(3, 16, 16) * 255
    torch.testing.assert_close(_warp(values, Geometry(), 16, mode="bicubic"), values, atol=1e-3, rtol=0)


def test_flip_mirrors_every_map():
    values = torch.randint(0, 21, (1, 40, 48)).float()
    flipped = _warp(values, Geometry(flip=True), 32, mode="nearest")
    torch.testing.assert_close(flipped, _warp(values, Geometry(), 32, mode="nearest").flip(-1))


def test_rotation_by_90_degrees_is_counter_clockwise():
    values = torch.arange(36.0).reshape(1, 6, 6)
    rotated = _warp(values, Geometry(angle=90.0), 6, mode="nearest")
    torch.testing.assert_close(rotated, torch.rot90(values, 1, dims=(1, 2)))
    marker = torch.zeros(1, 6, 6)
    marker[0, 2:4, 5] = 1  # right of the centre ...
    assert _warp(marker, Geometry(angle=90.0), 6, mode="nearest")[0, 0, 2:4].tolist() == [1, 1]  # ... moves to the top


def test_zoom_out_fills_the_outside_with_the_fill_value():
    values = torch.full((1, 8, 8), 3.0)
    out = _warp(values, Geometry(scale=0.5), 8, mode="nearest", fill=255)
    assert (out[0, 2:6, 2:6] == 3).all()
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[2:6, 2:6] = False
    assert (out[0][outside] == 255).all()


def test_zoom_in_by_two_magnifies_the_centre():
    values = torch.arange(16.0).reshape(1, 4, 4)
    out = _warp(values, Geometry(scale=2.0), 4, mode="nearest")
    # the central 2x2 block [[5, 6], [9, 10]] fills the output, each pixel twice in each direction
    expected = torch.tensor([[5.0, 5, 6, 6], [5, 5, 6, 6], [9, 9, 10, 10], [9, 9, 10, 10]])
    torch.testing.assert_close(out[0], expected)


def test_flip_negates_normal_x():
    n = torch.tensor([0.6, 0.0, 0.8]).view(3, 1, 1).expand(3, 2, 2)
    out = transform_normals(n, Geometry(flip=True))
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([-0.6, 0.0, 0.8]))


def test_rotation_turns_normals_with_the_image():
    # a normal pointing right (+x), rotated 90 degrees counter-clockwise, points up (-y, y is down)
    n = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    torch.testing.assert_close(transform_normals(n, Geometry(angle=90.0))[:, 0, 0], torch.tensor([0.0, -1.0, 0.0]))
    a = math.radians(30)
    n = torch.tensor([0.6, 0.0, 0.8]).view(3, 1, 1)
    expected = torch.tensor([0.6 * math.cos(a), -0.6 * math.sin(a), 0.8])
    torch.testing.assert_close(transform_normals(n, Geometry(angle=30.0))[:, 0, 0], expected)
    assert transform_normals(n, Geometry(scale=1.7))[:, 0, 0].tolist() == pytest.approx([0.6, 0.0, 0.8])


def test_finish_normals_renormalises_and_marks_zero_vectors_255():
    n = torch.tensor([[[0.0, 3.0]], [[0.0, 0.0]], [[0.0, 4.0]]])  # pixel 0 zero, pixel 1 (3, 0, 4)
    out = finish_normals(n)
    assert out[:, 0, 0].tolist() == [255.0, 255.0, 255.0]
    torch.testing.assert_close(out[:, 0, 1], torch.tensor([0.6, 0.0, 0.8]))


def test_imagenet_normalisation():
    image = torch.tensor([255.0, 0.0, 127.5]).view(3, 1, 1)
    expected = [(v - m) / s for v, m, s in zip((1.0, 0.0, 0.5), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert normalise_image(image).flatten().tolist() == pytest.approx(expected, rel=1e-6)


def test_random_geometry_stays_in_range():
    torch.manual_seed(0)
    draws = [random_geometry((0.75, 1.25), 20.0) for _ in range(200)]
    assert all(0.75 <= g.scale <= 1.25 and -20 <= g.angle <= 20 for g in draws)
    flips = sum(g.flip for g in draws)
    assert 60 < flips < 140
