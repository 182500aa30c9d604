"""Canvases of overlapping handwritten digits and their targets, as pure functions of a seed.

Every canvas holds a few of scikit-learn's real 8x8 digits, each warped onto
the canvas (scale, rotation, position) in one batched ``grid_sample`` call
and placed on its own depth layer. Depth has two visual cues so that it can
be learnt from the image: nearer digits are larger and brighter (fog), and
they occlude farther ones. All targets come from the same per-digit masks,
so segmentation, depth, normals and the front-digit class always agree.
"""

from __future__ import annotations

import functools
import math

import attrs
import torch
import torch.nn.functional as F

__all__ = [
    "BACKGROUND_DEPTH",
    "CANVAS",
    "DEPTH_LEVELS",
    "MASK_THRESHOLD",
    "Canvases",
    "draw_slots",
    "load_sources",
    "occlude",
    "relief_normals",
    "render_canvases",
    "split_sources",
    "warp_glyphs",
]

CANVAS = 32
#: Digits sit on distinct layers of this grid, so "the front digit" is always unique.
DEPTH_LEVELS = torch.linspace(1.0, 4.0, 13)
#: Background is farther than every digit and still > 0, so every pixel is a valid depth pixel.
BACKGROUND_DEPTH = 5.0
#: A pixel belongs to a digit where the warped stroke intensity exceeds this.
MASK_THRESHOLD = 0.3
#: Height (in pixels) of a stroke of full intensity in the relief that defines the normals.
RELIEF = 4.0
_MAX_ROTATION = math.radians(12.0)
_SOURCE_FRACTIONS = (0.6, 0.2, 0.2)


@attrs.frozen(kw_only=True)
class Canvases:
    """A batch of rendered canvases.

    Attributes:
        image: ``[N,1,H,W]`` float32 in [0, 1].
        seg: ``[N,H,W]`` int64, 0 background and ``1 + d`` for digit d.
        depth: ``[N,1,H,W]`` float32, the front digit's layer in [1, 4], background 5.
        normal: ``[N,3,H,W]`` float32 unit normals of the stroke relief (background (0, 0, 1)).
        cls: ``[N]`` int64, the class of the front-most digit.
        layer: ``[N,K]`` float32 depth of each slot, inf for empty slots.
    """

    image: torch.Tensor
    seg: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    cls: torch.Tensor
    layer: torch.Tensor


@functools.lru_cache(maxsize=1)
def load_sources() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits: images ``[1797,8,8]`` in [0, 1] and labels ``[1797]`` (no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float() / 16.0
    return images, torch.from_numpy(digits.target).long()


def split_sources(num_images: int, seed: int) -> dict[str, torch.Tensor]:
    """Disjoint source-digit indices per split (60/20/20), so test digits are never seen in training."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed))
    n_train = round(_SOURCE_FRACTIONS[0] * num_images)
    n_val = round(_SOURCE_FRACTIONS[1] * num_images)
    return {
        "train": order[:n_train].sort().values,
        "val": order[n_train : n_train + n_val].sort().values,
        "test": order[n_train + n_val :].sort().values,
    }


def warp_glyphs(glyphs: torch.Tensor, size: torch.Tensor, centre: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Place 8x8 glyphs ``[M,8,8]`` on ``CANVAS``-sized canvases: ``[M,H,W]`` stroke intensities.

    A glyph becomes a ``size``-pixel square centred at ``centre`` (canvas pixels),
    rotated by ``angle``. affine_grid maps canvas coordinates u (in [-1, 1]) to glyph
    coordinates v = (CANVAS/size) R (u - c).
    """
    scale = (CANVAS / size)[:, None, None]
    cos, sin = angle.cos(), angle.sin()
    linear = scale * torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    c = 2.0 * centre / CANVAS - 1.0
    shift = -(linear @ c[..., None])
    grid = F.affine_grid(torch.cat([linear, shift], -1), [len(glyphs), 1, CANVAS, CANVAS], align_corners=False)
    warped = F.grid_sample(glyphs[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped[:, 0]


def relief_normals(height: torch.Tensor) -> torch.Tensor:
    """Unit normals ``[N,3,H,W]`` of a height field ``[N,H,W]`` (central differences, edges replicated)."""
    padded = F.pad(height[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) / 2.0
    dy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) / 2.0
    norm = (dx.square() + dy.square() + 1.0).sqrt()  # F.normalize over dim 1 is ~10x slower here
    return torch.stack([-dx / norm, -dy / norm, 1.0 / norm], 1)


def occlude(
    mask: torch.Tensor, layer: torch.Tensor, slot_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per pixel, the nearest digit whose mask covers it wins.

    Args:
        mask: ``[N,K,H,W]`` bool, where slot k's digit covers the pixel.
        layer: ``[N,K]`` depth of each slot (distinct within a canvas; inf for empty slots).
        slot_labels: ``[N,K]`` digit class of each slot.

    Returns:
        ``seg [N,H,W]`` (0 background, 1 + class), ``depth [N,1,H,W]`` (background
        :data:`BACKGROUND_DEPTH`) and the winning slot ``[N,H,W]`` (arbitrary on background).
    """
    front_depth, front_slot = torch.where(mask, layer[..., None, None], torch.inf).min(1)
    covered = torch.isfinite(front_depth)
    seg = torch.where(covered, slot_labels.gather(1, front_slot.flatten(1)).view_as(front_slot) + 1, 0)
    depth = torch.where(covered, front_depth, BACKGROUND_DEPTH)[:, None]
    return seg, depth, front_slot


def draw_slots(
    pool: torch.Tensor, count: int, num_digits: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(digit, present)``, both ``[count, num_digits[1]]``: the index (from ``pool``) of each slot's digit and
    whether the slot holds one. These are :func:`render_canvases`' first draws, so a generator in the same state
    says which digits it renders."""
    lo, hi = num_digits
    per_canvas = torch.randint(lo, hi + 1, (count,), generator=generator)
    present = torch.arange(hi)[None] < per_canvas[:, None]
    return pool[torch.randint(0, len(pool), (count, hi), generator=generator)], present


def render_canvases(
    images: torch.Tensor,
    labels: torch.Tensor,
    pool: torch.Tensor,
    count: int,
    num_digits: tuple[int, int],
    generator: torch.Generator,
) -> Canvases:
    """Render ``count`` canvases from the digits ``images [M,8,8]`` / ``labels [M]`` whose indices are in ``pool``.

    Each canvas holds between ``num_digits[0]`` and ``num_digits[1]`` digits. The
    output depends only on the inputs and the generator's state.
    """
    n, k = count, num_digits[1]
    pick, present = draw_slots(pool, count, num_digits, generator)
    levels = torch.rand(n, len(DEPTH_LEVELS), generator=generator).argsort(1)[:, :k]
    layer = DEPTH_LEVELS[levels]
    size = (16.0 - 2.0 * (layer - 1.0)) * (0.9 + 0.2 * torch.rand(n, k, generator=generator))
    brightness = (1.0 - 0.15 * (layer - 1.0)) * (0.9 + 0.1 * torch.rand(n, k, generator=generator))
    centre = size[..., None] / 2 + torch.rand(n, k, 2, generator=generator) * (CANVAS - size)[..., None]
    angle = (2.0 * torch.rand(n, k, generator=generator) - 1.0) * _MAX_ROTATION
    background = 0.15 * torch.rand(n, generator=generator)
    noise = 0.03 * torch.randn(n, 1, CANVAS, CANVAS, generator=generator)

    alpha = warp_glyphs(images[pick].flatten(0, 1), size.flatten(), centre.flatten(0, 1), angle.flatten())
    alpha = alpha.view(n, k, CANVAS, CANVAS) * present[..., None, None]
    mask = alpha > MASK_THRESHOLD
    slot_labels = labels[pick]
    layer = torch.where(present, layer, torch.inf)

    seg, depth, front_slot = occlude(mask, layer, slot_labels)
    front_alpha = alpha.gather(1, front_slot[:, None])[:, 0] * (seg > 0)
    cls = slot_labels.gather(1, layer.argmin(1, keepdim=True))[:, 0]

    # Back-to-front "over" compositing; a digit is opaque where it covers at least twice the mask threshold.
    image = background[:, None, None, None].expand(n, 1, CANVAS, CANVAS).clone()
    opacity = (alpha / (2 * MASK_THRESHOLD)).clamp(max=1.0)
    for slot in torch.where(present, layer, -1.0).argsort(1, descending=True).T:
        a = opacity.gather(1, slot[:, None, None, None].expand(n, 1, CANVAS, CANVAS))
        b = brightness.gather(1, slot[:, None])[..., None, None]
        image = image * (1 - a) + b * a
    image = (image + noise).clamp(0.0, 1.0)

    return Canvases(
        image=image.contiguous(),
        seg=seg,
        depth=depth.contiguous(),
        normal=relief_normals(RELIEF * front_alpha),
        cls=cls,
        layer=layer,
    )
