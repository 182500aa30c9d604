"""Rendering: glyph placement, occlusion, normals and the source split, against independent computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtlx_digits.render import (
    BACKGROUND_DEPTH,
    draw_slots,
    load_sources,
    occlude,
    relief_normals,
    render_canvases,
    split_sources,
    warp_glyphs,
)


def test_load_sources_are_the_bundled_digits_scaled_to_unit_range():
    images, labels = load_sources()
    assert images.shape == (1797, 8, 8) and images.dtype == torch.float32
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert torch.equal(labels.bincount(), torch.tensor([178, 182, 177, 183, 181, 182, 181, 179, 174, 180]))


def test_split_sources_partitions_all_digits_disjointly_60_20_20():
    pools = split_sources(1797, seed=3)
    assert [len(pools[s]) for s in ("train", "val", "test")] == [1078, 359, 360]
    assert torch.equal(torch.cat(list(pools.values())).sort().values, torch.arange(1797))
    assert not torch.equal(split_sources(1797, seed=4)["test"], pools["test"])


def test_warp_without_rotation_matches_bilinear_interpolate_placed_on_the_canvas():
    """A 16-pixel glyph at an integer offset equals F.interpolate away from its border (padding differs there)."""
    glyphs = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    offsets = [(3, 5), (10, 0)]  # (x0, y0) of the top-left corner
    centre = torch.tensor([[x + 8.0, y + 8.0] for x, y in offsets])
    warped = warp_glyphs(glyphs, torch.full((2,), 16.0), centre, torch.zeros(2))
    reference = F.interpolate(glyphs[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    for i, (x0, y0) in enumerate(offsets):
        inside = warped[i, y0 : y0 + 16, x0 : x0 + 16]
        torch.testing.assert_close(inside[1:-1, 1:-1], reference[i, 1:-1, 1:-1])
        outside = warped[i].clone()  # bilinear support reaches half a glyph pixel (1 canvas pixel) further
        outside[max(y0 - 1, 0) : y0 + 17, max(x0 - 1, 0) : x0 + 17] = 0
        assert float(outside.abs().max()) == 0.0


def test_warp_rotation_by_a_right_angle_rotates_the_glyph():
    glyph = torch.zeros(1, 8, 8)
    glyph[0, 1, 2:6] = 1.0  # a horizontal bar near the top
    centre = torch.tensor([[16.0, 16.0]])
    upright = warp_glyphs(glyph, torch.tensor([16.0]), centre, torch.zeros(1))[0]
    turned = warp_glyphs(glyph, torch.tensor([16.0]), centre, torch.tensor([math.pi / 2]))[0]
    torch.testing.assert_close(turned, upright.rot90(1, dims=(0, 1)), atol=1e-5, rtol=0)


def test_occlude_nearest_covering_digit_wins_per_pixel():
    """Two overlapping squares, hand-computed: the nearer one (layer 1.5) owns the overlap."""
    mask = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
    mask[0, 0, 0:3, 0:3] = True  # digit 7 at depth 3.0
    mask[0, 1, 1:4, 1:4] = True  # digit 2 at depth 1.5
    layer = torch.tensor([[3.0, 1.5, math.inf]])  # slot 2 is empty
    labels = torch.tensor([[7, 2, 9]])
    seg, depth, _ = occlude(mask, layer, labels)
    expected_seg = torch.tensor([[8, 8, 8, 0], [8, 3, 3, 3], [8, 3, 3, 3], [0, 3, 3, 3]])
    assert torch.equal(seg[0], expected_seg)
    expected_depth = torch.tensor(
        [[3.0, 3.0, 3.0, 5.0], [3.0, 1.5, 1.5, 1.5], [3.0, 1.5, 1.5, 1.5], [5.0, 1.5, 1.5, 1.5]]
    )
    assert torch.equal(depth[0, 0], expected_depth)


def test_relief_normals_match_torch_gradient_inside_and_face_the_camera_on_flat_ground():
    height = torch.zeros(1, 12, 12)
    height[0, 4:8, 3:9] = torch.rand(4, 6, generator=torch.Generator().manual_seed(1)) * 3
    normals = relief_normals(height)
    torch.testing.assert_close(normals.norm(dim=1), torch.ones(1, 12, 12))
    gy, gx = torch.gradient(height[0])
    reference = F.normalize(torch.stack([-gx, -gy, torch.ones_like(gx)]), dim=0)
    torch.testing.assert_close(normals[0][:, 1:-1, 1:-1], reference[:, 1:-1, 1:-1])
    assert torch.equal(normals[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]))


@pytest.fixture(scope="module")
def canvases():
    images, labels = load_sources()
    pool = split_sources(len(images), seed=0)["train"]
    return render_canvases(images, labels, pool, 300, (2, 3), torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def sources():
    """``[N,K]`` indices of the digits the ``canvases`` hold, -1 for empty slots (the renderer's first draws)."""
    images, _ = load_sources()
    pool = split_sources(len(images), seed=0)["train"]
    pick, present = draw_slots(pool, 300, (2, 3), torch.Generator().manual_seed(7))
    return torch.where(present, pick, -1)


def test_render_is_deterministic_in_the_generator(canvases):
    images, labels = load_sources()
    pool = split_sources(len(images), seed=0)["train"]
    again = render_canvases(images, labels, pool, 300, (2, 3), torch.Generator().manual_seed(7))
    other = render_canvases(images, labels, pool, 300, (2, 3), torch.Generator().manual_seed(8))
    for field in ("image", "seg", "depth", "normal", "cls", "layer"):
        assert torch.equal(getattr(again, field), getattr(canvases, field)), field
    assert not torch.equal(other.image, canvases.image)
    assert not torch.equal(other.seg, canvases.seg)


def test_render_draws_the_requested_number_of_digits_on_distinct_layers(canvases, sources):
    present = sources >= 0
    assert set(present.sum(1).tolist()) == {2, 3}
    layers = [sorted(row[row.isfinite()].tolist()) for row in canvases.layer]
    assert all(len(set(row)) == len(row) and 1.0 <= row[0] and row[-1] <= 4.0 for row in layers)
    assert torch.equal(torch.isfinite(canvases.layer), present)


def test_seg_background_is_exactly_depth_background_and_flat(canvases):
    assert torch.equal(canvases.seg == 0, canvases.depth[:, 0] == BACKGROUND_DEPTH)
    near_digit = F.max_pool2d((canvases.seg > 0).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0
    far = canvases.normal.permute(0, 2, 3, 1)[~near_digit]
    assert len(far) > 0 and torch.equal(far, torch.tensor([0.0, 0.0, 1.0]).expand_as(far))
    torch.testing.assert_close(canvases.normal.norm(dim=1), torch.ones_like(canvases.depth[:, 0]))


def test_seg_and_depth_agree_on_which_digit_is_in_front(canvases, sources):
    """Every digit pixel's depth is the layer of a slot on that canvas whose class is the seg label."""
    _, labels = load_sources()
    slot_labels = torch.where(sources >= 0, labels[sources.clamp(min=0)], -1)
    depth = canvases.depth[:, 0]
    digit = canvases.seg > 0
    matches = depth[..., None] == canvases.layer[:, None, None, :]  # [N,H,W,K]
    assert torch.equal(matches.sum(-1)[digit], torch.ones(int(digit.sum()), dtype=torch.long))
    owner_label = (slot_labels[:, None, None, :] * matches).sum(-1)
    assert torch.equal(owner_label[digit] + 1, canvases.seg[digit])


def test_cls_is_the_class_of_the_front_digit_which_is_visible(canvases, sources):
    _, labels = load_sources()
    front = canvases.layer.argmin(1)
    assert torch.equal(canvases.cls, labels[sources.gather(1, front[:, None])[:, 0]])
    nearest = canvases.layer.min(1).values
    front_pixels = canvases.depth[:, 0] == nearest[:, None, None]
    assert bool(front_pixels.flatten(1).any(1).all())
    assert torch.equal(
        canvases.seg[front_pixels], (canvases.cls[:, None, None] + 1).expand_as(front_pixels)[front_pixels]
    )


def test_images_are_unit_range_and_brighter_on_digits_than_background(canvases):
    image = canvases.image[:, 0]
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert float(image[canvases.seg > 0].mean()) > float(image[canvases.seg == 0].mean()) + 0.3
