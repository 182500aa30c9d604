"""Geometric transforms of one sample: flip, scale, rotation and the fixed square resize, in one resampling.

The reference pipeline (ASTMT ``RandomHorizontalFlip``, ``ScaleNRotate``,
``FixedResize``) warps each map with OpenCV at its own size and then resizes
it to 512x512. Here the three are one affine map from output to input
coordinates, sampled with ``torch.nn.functional.grid_sample`` (cubic for
the image and normals, nearest for label maps), so a sample is interpolated
once. Differences from the reference, on purpose:

* out-of-image pixels of rotated/zoomed-out label maps are 255 (ignored),
  not 0 (background) as OpenCV's constant border gives;
* cubic samples near the image border use replicated pixels (OpenCV
  ``resize`` does the same; ``warpAffine`` blends in black).

Normal vectors follow the image: a flip negates ``n_x``, a rotation by
``a`` degrees counter-clockwise (as displayed) maps ``(n_x, n_y)`` to
``(n_x cos a + n_y sin a, -n_x sin a + n_y cos a)`` (``n_y`` points down),
the reference's ``ScaleNRotate`` rule.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F

__all__ = [
    "Geometry",
    "finish_normals",
    "normalise_image",
    "random_geometry",
    "sampling_grid",
    "transform_normals",
    "warp",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE = 255.0


@attrs.frozen
class Geometry:
    """One sample's augmentation: horizontal flip, zoom factor (>1 enlarges) and rotation in degrees (CCW)."""

    flip: bool = False
    scale: float = 1.0
    angle: float = 0.0


def random_geometry(scale_range: tuple[float, float], max_rotation: float) -> Geometry:
    """Flip with p=0.5, scale ~ U(scale_range), angle ~ U(-max_rotation, max_rotation) (torch's global RNG)."""
    u = torch.rand(3, dtype=torch.float64).tolist()
    low, high = scale_range
    return Geometry(flip=u[0] < 0.5, scale=low + (high - low) * u[1], angle=max_rotation * (2.0 * u[2] - 1.0))


def _theta(geometry: Geometry, height: int, width: int) -> torch.Tensor:
    """Output -> input normalised coordinates (``affine_grid``'s theta) for an input of ``height x width``.

    In pixels about the centre, ``p_in = R(a)^T p_out / s`` with ``R`` the
    counter-clockwise rotation in y-down coordinates; normalising x by W/2
    and y by H/2 gives the aspect factors. The flip acts on the input side.
    """
    a = math.radians(geometry.angle)
    c, s = math.cos(a) / geometry.scale, math.sin(a) / geometry.scale
    x_sign = -1.0 if geometry.flip else 1.0
    rows = [[x_sign * c, -x_sign * s * height / width, 0.0], [s * width / height, c, 0.0]]
    return torch.tensor(rows, dtype=torch.float32)


def sampling_grid(geometry: Geometry, height: int, width: int, size: int) -> torch.Tensor:
    """``grid_sample`` grid ``[1, size, size, 2]``: where each output pixel centre falls in an ``height x width`` input.

    Equivalent to ``affine_grid(theta, align_corners=False)``, written out
    because that op costs milliseconds per call on a busy multi-threaded CPU.
    """
    theta = _theta(geometry, height, width)
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    x, y = centres.view(1, size), centres.view(size, 1)
    grid = torch.stack([theta[0, 0] * x + theta[0, 1] * y, theta[1, 0] * x + theta[1, 1] * y], dim=-1)
    return grid.unsqueeze(0)


def warp(values: torch.Tensor, grid: torch.Tensor, *, mode: str, fill: float = 0.0) -> torch.Tensor:
    """Resample ``[C, H, W]`` floats on a :func:`sampling_grid`; samples outside the input are ``fill``."""
    out = F.grid_sample(values.unsqueeze(0), grid, mode=mode, padding_mode="border", align_corners=False)[0]
    inside = (grid[0].abs() <= 1.0).all(-1)
    return torch.where(inside, out, torch.full_like(out, fill))


def transform_normals(normals: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Flip and rotate the vectors of a ``[3, H, W]`` normal map (pixels move separately, in :func:`warp`)."""
    nx, ny, nz = normals.unbind(0)
    if geometry.flip:
        nx = -nx
    if geometry.angle:
        a = math.radians(geometry.angle)
        nx, ny = nx * math.cos(a) + ny * math.sin(a), -nx * math.sin(a) + ny * math.cos(a)
    return torch.stack([nx, ny, nz])


def finish_normals(normals: torch.Tensor) -> torch.Tensor:
    """Re-normalise resampled normals; pixels with zero norm become 255 in all channels (ignored).

    Tiny non-zero vectors (cubic overshoot next to masked pixels) become unit
    vectors too; the reference divides by ``norm + eps`` and keeps them short.
    """
    norm = normals.norm(dim=0, keepdim=True)
    unit = normals / norm.clamp_min(torch.finfo(normals.dtype).tiny)
    return torch.where(norm > 0, unit, torch.full_like(unit, IGNORE))


def normalise_image(image: torch.Tensor) -> torch.Tensor:
    """``[3, H, W]`` values in 0..255 -> ImageNet-normalised floats."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.clamp(0.0, 255.0) / 255.0 - mean) / std
