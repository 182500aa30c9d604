"""GTA5 -> Cityscapes: label-id mapping, both label forms, geometry, errors naming files, the test split."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtlx.config import build_component_config
from mtlx.errors import DataError
from mtlx_cityscapes.gta5 import GTA5
from mtlx_cityscapes.labels import LABEL_TO_TRAIN_ID, TRAIN_CLASSES, to_train_ids
from mtlx_cityscapes.testing import write_gta5_frame

# The standard Cityscapes label ids of the 19 evaluated classes (cityscapesScripts labels.py), written out here
# independently of mtlx_cityscapes.labels.
EVALUATED_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


def _gta5(gta5_root: Path, cityscapes_root: Path, **options) -> GTA5:
    options = {"cityscapes_root": str(cityscapes_root), **options}
    return GTA5(build_component_config(GTA5.Config, options, "dataset 'gta5'"), gta5_root)


def test_label_ids_map_to_train_ids_and_everything_else_to_255() -> None:
    ids = np.arange(256, dtype=np.uint8)
    mapped = to_train_ids(ids)
    assert mapped[7] == 0 and mapped[26] == 13 and mapped[33] == 18
    assert [int(mapped[i]) for i in EVALUATED_IDS] == list(range(19))
    unmapped = sorted(set(range(256)) - set(EVALUATED_IDS))
    assert (mapped[unmapped] == 255).all()  # 0, 4, 14, 34, 255, ...
    assert len(LABEL_TO_TRAIN_ID) == len(TRAIN_CLASSES) == 19
    with pytest.raises(TypeError, match="uint8"):
        to_train_ids(ids.astype(np.int64))


def test_frames_yield_train_ids_with_minus_one_ignored(gta5_root: Path, cityscapes_root: Path) -> None:
    dataset = _gta5(gta5_root, cityscapes_root)
    assert dataset.input_shape == (3, 32, 64)  # the Cityscapes release's resolution
    assert list(dataset.tasks) == ["segmentation"] and dataset.tasks["segmentation"].out_channels == 19
    split = dataset.split("train")
    assert len(split) == 3
    image, targets = split[1]
    assert image.shape == (3, 32, 64) and image.dtype == torch.float32
    pixels = np.array(Image.open(gta5_root / "images/00002.png"))
    torch.testing.assert_close(image, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    label_ids = np.asarray(Image.open(gta5_root / "labels/00002.png"))
    expected = np.vectorize(lambda i: EVALUATED_IDS.index(i) if i in EVALUATED_IDS else -1)(label_ids)
    assert {0, 4, 14, 34} & set(np.unique(label_ids).tolist())  # unmapped ids are present
    assert torch.equal(targets["segmentation"], torch.from_numpy(expected).long())


def test_train_id_files_take_precedence(gta5_root: Path, cityscapes_root: Path) -> None:
    label_ids = np.full((32, 64), 7, np.uint8)  # road in label ids ...
    train_ids = np.full((32, 64), 5, np.uint8)  # ... but the converted file says pole, with an ignored corner
    train_ids[:4, :4] = 255
    write_gta5_frame(gta5_root, 4, label_ids, train_ids=train_ids)
    _, targets = _gta5(gta5_root, cityscapes_root).split("train")[3]
    assert targets["segmentation"][:4, :4].eq(-1).all() and targets["segmentation"][4:].eq(5).all()


def test_size_mismatch_and_aspect_preserving_crop(gta5_root: Path, cityscapes_root: Path) -> None:
    # a 32x128 frame (twice as wide as the 32x64 target) keeps its centre columns 32..95 at full resolution
    label_ids = np.tile(np.array(EVALUATED_IDS * 7)[:128], (32, 1)).astype(np.uint8)
    write_gta5_frame(gta5_root, 4, label_ids)
    split = _gta5(gta5_root, cityscapes_root).split("train")
    _, targets = split[3]
    assert torch.equal(targets["segmentation"], torch.from_numpy(to_train_ids(label_ids[:, 32:96]).astype(np.int64)))
    # an image of 40x80 with a 32x64 label: the label is resized to the image, both to the target
    write_gta5_frame(gta5_root, 5, label_ids[:, :64], image_size=(40, 80))
    image, targets = _gta5(gta5_root, cityscapes_root).split("train")[4]
    assert image.shape == (3, 32, 64) and targets["segmentation"].shape == (32, 64)
    assert set(targets["segmentation"].unique().tolist()) <= set(range(19))


def test_test_split_is_cityscapes_val_with_19_classes(gta5_root: Path, cityscapes_root: Path) -> None:
    dataset = _gta5(gta5_root, cityscapes_root, resolution=[16, 32])
    assert dataset.splits == ("train", "test") and dataset.baseline() is None
    image, targets = dataset.split("test")[1]
    assert image.shape == (3, 16, 32) and dataset.input_shape == (3, 16, 32)
    label = np.load(cityscapes_root / "val/label_19/1.npy")
    assert torch.equal(targets["segmentation"], torch.from_numpy(label[::2, ::2]).long())
    assert dataset.split("train")[0][0].shape == (3, 16, 32)


def test_per_class_iou_follows_the_train_id_order(gta5_root: Path, cityscapes_root: Path) -> None:
    meter = _gta5(gta5_root, cityscapes_root).tasks["segmentation"].meter()
    road, car, bus = (TRAIN_CLASSES.index(c) for c in ("road", "car", "bus"))
    target = torch.tensor([road, road, car, car, -1])
    meter.update(torch.tensor([road, car, car, car, bus]), target)
    # road: tp 1, union 2; car: tp 2, union 3; the other 17 classes (bus only on an ignored pixel) are absent
    per_class = dict(zip(TRAIN_CLASSES, meter.per_class_iou().tolist(), strict=True))
    assert (per_class["road"], per_class["car"]) == pytest.approx((1 / 2, 2 / 3))
    assert all(np.isnan(v) for c, v in per_class.items() if c not in ("road", "car"))
    assert meter.compute()["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_augmented_frames_keep_valid_ids(gta5_root: Path, cityscapes_root: Path) -> None:
    torch.manual_seed(0)
    split = _gta5(gta5_root, cityscapes_root, augment=True).split("train")
    for index in range(len(split)):
        image, targets = split[index]
        assert image.shape == (3, 32, 64)
        assert set(targets["segmentation"].unique().tolist()) <= {-1, *range(19)}


def _remove(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda r: _remove(r / "labels/00002.png"),
            r"labels/00002\.png is missing \(the label of .*images/00002\.png\)",
        ),
        (lambda r: _remove(r / "images/00003.png"), r"labels/00003\.png has no image .*images/00003\.png"),
        (
            lambda r: (r / "images/00001.png").rename(r / "images/frame1.png"),
            r"images/frame1\.png: unexpected file name",
        ),
        (
            lambda r: shutil.rmtree(r / "images") or (r / "images").mkdir(),
            r"empty split: .*images holds no \.png frames",
        ),
        (lambda r: shutil.rmtree(r / "labels"), r"directory .*gta5/labels is missing"),
    ],
)
def test_inconsistent_trees_raise_naming_the_file(gta5_root: Path, cityscapes_root: Path, corrupt, message) -> None:
    corrupt(gta5_root)
    with pytest.raises(DataError, match=message):
        _gta5(gta5_root, cityscapes_root).split("train")


def test_unreadable_labels_raise_when_read(gta5_root: Path, cityscapes_root: Path) -> None:
    Image.new("RGB", (64, 32)).save(gta5_root / "labels/00002.png")  # a colour-coded label
    (gta5_root / "labels/00003.png").write_bytes(b"\x89PNG broken")
    write_gta5_frame(gta5_root, 4, np.zeros((32, 64), np.uint8), train_ids=np.full((32, 64), 19, np.uint8))
    split = _gta5(gta5_root, cityscapes_root).split("train")
    split[0]
    with pytest.raises(DataError, match=r"labels/00002\.png: image mode 'RGB'; expected a palettised"):
        split[1]
    with pytest.raises(DataError, match=r"cannot read .*labels/00003\.png"):
        split[2]
    with pytest.raises(
        DataError, match=r"labels/00004_labelTrainIds\.png: train ids must be 0\.\.18 or 255, found \[19\]"
    ):
        split[3]


def test_missing_cityscapes_root_is_explained(gta5_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTLX_DATA", raising=False)
    with pytest.raises(DataError, match=r"gta5 is tested on Cityscapes val: pass -o dataset.cityscapes_root=PATH"):
        GTA5(GTA5.Config(), gta5_root)
    with pytest.raises(DataError, match=r"'cityscapes': directory /nonexistent does not exist.*val/\{image,label_19\}"):
        GTA5(GTA5.Config(cityscapes_root="/nonexistent"), gta5_root)
    with pytest.raises(DataError, match=r"'gta5'.*download\.visinf\.tu-darmstadt\.de"):
        GTA5(GTA5.Config(cityscapes_root="/nonexistent"), gta5_root / "nope")
