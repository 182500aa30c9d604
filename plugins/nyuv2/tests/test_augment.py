"""The nyuv2 train split draws one scale-crop-flip per sample (mtlx-dense's) and resumes it exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlx.data import make_loader
from mtlx_dense import ScaleCropFlip
from mtlx_nyuv2.dataset import NYUv2

KINDS = {"image": "image", "segmentation": "segmentation", "depth": "depth", "normal": "normal"}


def test_dataset_applies_one_draw_per_sample_from_the_process_seed(nyuv2_root: Path) -> None:
    split = NYUv2(NYUv2.Config(augment=True), nyuv2_root).split("train")
    plain = NYUv2(NYUv2.Config(), nyuv2_root).split("train")
    torch.manual_seed(5)
    image, targets = split[2]
    draw = ScaleCropFlip.draw(32, 64, (1.0, 1.2, 1.5), torch.Generator().manual_seed(5))
    x, y = plain[2]
    expected = draw.apply({"image": x, **y}, KINDS)
    assert torch.equal(image, expected["image"])
    for task in y:
        assert torch.equal(targets[task], expected[task])
    assert NYUv2(NYUv2.Config(augment=True), nyuv2_root).split("test").augment is None


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_loader_draws_the_same_augmentations(nyuv2_root: Path, workers: int) -> None:
    """A StatefulDataLoader restored mid-epoch yields exactly the batches of the uninterrupted run."""

    def loader():
        split = NYUv2(NYUv2.Config(augment=True), nyuv2_root).split("train")
        return make_loader(split, batch_size=1, shuffle=True, seed=3, num_workers=workers)

    torch.manual_seed(11)
    first = loader()
    it = iter(first)
    next(it)
    state = first.state_dict()
    rest = [batch for batch in it]
    torch.manual_seed(999)  # the resumed process may have a different global seed
    resumed = loader()
    resumed.load_state_dict(state)
    again = list(resumed)
    assert len(again) == len(rest) == 3
    for (x1, y1), (x2, y2) in zip(rest, again, strict=True):
        assert torch.equal(x1, x2)
        assert all(torch.equal(y1[t], y2[t]) for t in y1)
