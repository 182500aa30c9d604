"""Scale-crop-flip keeps the semantics of every field (depth / s, flipped normals' x negated, ids intact)
and a resumed loader draws the same augmentations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

from mtlx.data import make_loader
from mtlx_dense import FIELD_KINDS, RandomScaleCropFlip, ScaleCropFlip, resize_fields

KINDS = {"image": "image", "segmentation": "segmentation", "depth": "depth", "normal": "normal"}


def _sample(height: int = 12, width: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    normal = torch.nn.functional.normalize(torch.randn(3, height, width, generator=g), dim=0)
    normal[:, :2, :3] = 0.0  # invalid pixels
    depth = torch.rand(1, height, width, generator=g) * 9 + 0.5
    depth[:, -3:, -2:] = 0.0
    label = torch.randint(0, 13, (height, width), generator=g)
    label[0, :] = -1
    return {"image": torch.rand(3, height, width, generator=g), "segmentation": label, "depth": depth, "normal": normal}


def _nearest_index(out: int, crop: int) -> torch.Tensor:
    """torch's nearest rule, written independently: source index floor(dst * crop / out)."""
    return torch.floor(torch.arange(out, dtype=torch.float64) * (crop / out)).long()


def test_identity_when_scale_one_and_no_flip() -> None:
    sample = _sample()
    out = ScaleCropFlip(scale=1.0, top=0, left=0, flip=False).apply(sample, KINDS)
    for name in sample:
        assert torch.equal(out[name], sample[name])


def test_flip_mirrors_every_field_and_negates_normal_x_only() -> None:
    sample = _sample()
    out = ScaleCropFlip(scale=1.0, top=0, left=0, flip=True).apply(sample, KINDS)
    assert torch.equal(out["image"], sample["image"].flip(-1))
    assert torch.equal(out["segmentation"], sample["segmentation"].flip(-1))
    assert torch.equal(out["depth"], sample["depth"].flip(-1))
    assert torch.equal(out["normal"][0], -sample["normal"][0].flip(-1))
    assert torch.equal(out["normal"][1:], sample["normal"][1:].flip(-1))
    assert torch.equal(out["normal"].abs().sum(0) == 0, sample["normal"].abs().sum(0).flip(-1) == 0)
    assert not torch.equal(sample["normal"][0], out["normal"][0])  # the input was not modified in place either way
    assert torch.equal(sample["normal"], _sample()["normal"])


@pytest.mark.parametrize("scale", [1.2, 1.5])
def test_zoom_divides_depth_by_the_scale_and_resamples_nearest(scale: float) -> None:
    sample = _sample()
    top, left = 1, 2
    out = ScaleCropFlip(scale=scale, top=top, left=left, flip=False).apply(sample, KINDS)
    crop_h, crop_w = int(12 / scale), int(20 / scale)
    rows = top + _nearest_index(12, crop_h)
    cols = left + _nearest_index(20, crop_w)
    expected_depth = sample["depth"][:, rows][:, :, cols] / scale
    torch.testing.assert_close(out["depth"], expected_depth)
    assert torch.equal(out["depth"] == 0, expected_depth == 0)  # invalid stays invalid, valid stays valid
    assert torch.equal(out["segmentation"], sample["segmentation"][rows][:, cols])
    assert out["segmentation"].dtype == torch.int64
    for name in ("image", "normal"):  # bilinear with align_corners=True keeps the crop's corner pixels
        window = sample[name][:, top : top + crop_h, left : left + crop_w]
        for r, c in ((0, 0), (-1, -1), (0, -1), (-1, 0)):
            torch.testing.assert_close(out[name][:, r, c], window[:, r, c])


def test_zoom_and_flip_compose_in_that_order() -> None:
    sample = _sample()
    zoom = ScaleCropFlip(scale=1.5, top=2, left=3, flip=False).apply(sample, KINDS)
    both = ScaleCropFlip(scale=1.5, top=2, left=3, flip=True).apply(sample, KINDS)
    assert torch.equal(both["depth"], zoom["depth"].flip(-1))
    assert torch.equal(both["normal"][0], -zoom["normal"][0].flip(-1))


def test_draw_covers_the_scales_and_fits_the_frame() -> None:
    g = torch.Generator().manual_seed(0)
    draws = [ScaleCropFlip.draw(12, 20, (1.0, 1.2, 1.5), g) for _ in range(300)]
    assert {d.scale for d in draws} == {1.0, 1.2, 1.5}
    assert 100 < sum(d.flip for d in draws) < 200
    for d in draws:
        assert d.top + int(12 / d.scale) <= 12 and d.left + int(20 / d.scale) <= 20
    assert {d.top for d in draws if d.scale == 1.5} == set(range(12 - 8 + 1))  # every position is reachable


def test_crop_outside_the_frame_and_unknown_kind_are_rejected() -> None:
    with pytest.raises(ValueError, match="does not fit field 'image'"):
        ScaleCropFlip(scale=1.5, top=10, left=0, flip=False).apply(_sample(), KINDS)
    with pytest.raises(ValueError, match="unknown field kind 'edge'"):
        resize_fields({"x": torch.zeros(1, 4, 4)}, {"x": "edge"}, (2, 2))
    assert set(FIELD_KINDS) == {"image", "segmentation", "depth", "normal"}


def test_resize_fields_uses_each_kinds_interpolation_and_keeps_depth_values() -> None:
    sample = _sample()
    out = resize_fields(sample, KINDS, (6, 10))
    rows, cols = _nearest_index(6, 12), _nearest_index(10, 20)
    assert torch.equal(out["segmentation"], sample["segmentation"][rows][:, cols])
    assert torch.equal(out["depth"], sample["depth"][:, rows][:, :, cols])  # not divided: same frame, fewer pixels
    for name in ("image", "normal"):  # bilinear, align_corners=True: the four corners are kept
        for r, c in ((0, 0), (-1, -1)):
            torch.testing.assert_close(out[name][:, r, c], sample[name][:, r, c])
    same = resize_fields(sample, KINDS, (12, 20))
    assert all(same[name] is sample[name] for name in sample)


def test_random_draws_come_from_the_process_seed() -> None:
    sample = _sample()
    torch.manual_seed(5)
    out = RandomScaleCropFlip()(sample, KINDS)
    expected = ScaleCropFlip.draw(12, 20, (1.0, 1.2, 1.5), torch.Generator().manual_seed(5)).apply(sample, KINDS)
    assert all(torch.equal(out[name], expected[name]) for name in sample)


def test_state_dict_restores_the_stream_of_draws() -> None:
    torch.manual_seed(0)
    augment = RandomScaleCropFlip(scales=(1.0, 1.5))
    sample = _sample()
    for _ in range(3):
        augment(sample, KINDS)
    state = augment.state_dict()
    expected = [augment(sample, KINDS)["depth"] for _ in range(4)]
    torch.manual_seed(123)  # the restored stream does not depend on the global seed
    restored = RandomScaleCropFlip(scales=(1.0, 1.5))
    restored.load_state_dict(state)
    assert all(torch.equal(restored(sample, KINDS)["depth"], e) for e in expected)
    assert RandomScaleCropFlip().state_dict() == {"generator": None}  # nothing drawn yet: seeded on first use
    restored.load_state_dict({"generator": None})
    torch.manual_seed(0)
    assert torch.equal(restored(sample, KINDS)["depth"], RandomScaleCropFlip(scales=(1.0, 1.5))(sample, KINDS)["depth"])


class _Augmented(torch.utils.data.Dataset):
    """Six fixed samples, augmented on access; the loader snapshots the augmentation through ``state_dict``."""

    def __init__(self) -> None:
        self.samples = [_sample(seed=i) for i in range(6)]
        self.augment = RandomScaleCropFlip()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.augment(self.samples[i], KINDS)

    def state_dict(self) -> dict[str, Any]:
        return self.augment.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.augment.load_state_dict(state)


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_loader_draws_the_same_augmentations(workers: int) -> None:
    """A StatefulDataLoader restored mid-epoch yields exactly the batches of the uninterrupted run."""
    torch.manual_seed(11)
    first = make_loader(_Augmented(), batch_size=2, shuffle=True, seed=3, num_workers=workers)
    it = iter(first)
    next(it)
    state = first.state_dict()
    rest = list(it)
    torch.manual_seed(999)  # the resumed process may have another global seed
    resumed = make_loader(_Augmented(), batch_size=2, shuffle=True, seed=3, num_workers=workers)
    resumed.load_state_dict(state)
    again = list(resumed)
    assert len(again) == len(rest) == 2
    for a, b in zip(rest, again, strict=True):
        assert all(torch.equal(a[name], b[name]) for name in KINDS)
