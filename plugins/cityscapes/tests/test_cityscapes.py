"""The cityscapes dataset on a fixture in the exact .npy release format: class versions, errors, metrics, preset."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlx.build import build_dataset
from mtlx.config import build_component_config, resolve_run_config
from mtlx.errors import ConfigError, DataError
from mtlx.metrics import delta_m
from mtlx_cityscapes.cityscapes import Cityscapes


def _dataset(root: Path, **options) -> Cityscapes:
    return Cityscapes(build_component_config(Cityscapes.Config, options, "dataset 'cityscapes'"), root)


@pytest.mark.parametrize(("classes", "directory"), [(7, "label_7"), (19, "label_19"), (2, "label_2")])
def test_samples_read_the_label_version_asked_for(cityscapes_root: Path, classes: int, directory: str) -> None:
    dataset = _dataset(cityscapes_root, classes=classes)
    assert dataset.tasks["segmentation"].out_channels == classes
    assert list(dataset.tasks) == ["segmentation", "depth"]
    image, targets = dataset.split("train")[3]
    assert image.shape == (3, 32, 64) and image.dtype == torch.float32
    label = np.load(cityscapes_root / "train" / directory / "3.npy")
    assert label.dtype == np.float32 and (label == -1).any()
    assert targets["segmentation"].dtype == torch.int64
    assert torch.equal(targets["segmentation"], torch.from_numpy(label).long())  # -1 kept as the ignore label
    depth = np.load(cityscapes_root / "train/depth/3.npy")
    assert targets["depth"].shape == (1, 32, 64)
    assert torch.equal(targets["depth"], torch.from_numpy(depth).permute(2, 0, 1))  # disparity, zeros invalid


def test_splits_and_libmtl_label_directory(cityscapes_root: Path) -> None:
    dataset = _dataset(cityscapes_root, label_dir="label")  # LibMTL's tree: label -> label_7
    assert dataset.splits == ("train", "test") and len(dataset.split("test")) == 2
    _, targets = dataset.split("test")[0]
    assert torch.equal(targets["segmentation"], torch.from_numpy(np.load(cityscapes_root / "val/label_7/0.npy")).long())


def test_missing_label_directory_lists_what_is_there(cityscapes_root: Path) -> None:
    for f in (cityscapes_root / "train/label_19").iterdir():
        f.unlink()
    (cityscapes_root / "train/label_19").rmdir()
    with pytest.raises(DataError, match=r"train/label_19 is missing.*has: depth, image, label, label_2, label_7\)"):
        _dataset(cityscapes_root, classes=19).split("train")


def test_inconsistent_files_name_the_file(cityscapes_root: Path) -> None:
    (cityscapes_root / "val/depth/1.npy").unlink()
    with pytest.raises(DataError, match=r"val/depth/1\.npy is missing"):
        _dataset(cityscapes_root).split("test")
    np.save(cityscapes_root / "train/label_7/2.npy", np.zeros((32, 64), np.uint16))
    with pytest.raises(DataError, match=r"train/label_7/2\.npy: dtype uint16, expected floating point or signed"):
        _dataset(cityscapes_root).split("train")
    np.save(cityscapes_root / "train/label_7/2.npy", np.full((32, 64), 7.0, np.float32))  # a 19-class id in label_7
    with pytest.raises(DataError, match=r"train/label_7/2\.npy: label ids range over \[7, 7\], expected -1 .* 0..6"):
        _dataset(cityscapes_root).split("train")[2]


def test_baseline_defaults_follow_the_class_count(cityscapes_root: Path) -> None:
    assert _dataset(cityscapes_root).config.baseline == "deeplabv3plus"
    assert _dataset(cityscapes_root, classes=19).baseline() is None
    with pytest.raises(ConfigError, match="baseline 'segnet' is a 7-class result; with classes=19 use baseline=none"):
        _dataset(cityscapes_root, classes=19, baseline="segnet")
    with pytest.raises(ConfigError, match="classes"):
        _dataset(cityscapes_root, classes=13)


def test_baselines_in_meter_units_and_delta_m(cityscapes_root: Path) -> None:
    dataset = _dataset(cityscapes_root)
    baseline = dataset.baseline()
    assert baseline["segmentation"] == pytest.approx({"miou": 0.6906, "pixacc": 0.9154})  # served as fractions
    assert baseline["depth"] == {"abs_err": 0.01282, "rel_err": 43.53}  # errors never rescaled
    assert _dataset(cityscapes_root, baseline="segnet").baseline() == {
        "segmentation": {"miou": 0.7401, "pixacc": 0.9316},
        "depth": {"abs_err": 0.0125, "rel_err": 27.77},
    }
    directions = {t: type(s.meter()).higher_is_better for t, s in dataset.tasks.items()}
    # +1 mIoU point (relative +1/69.06) and 10% lower Rel Err: task-avg = ((0.01/0.6906)/2 + 0.1/2) / 2
    better = {"segmentation": {"miou": 0.7006, "pixacc": 0.9154}, "depth": {"abs_err": 0.01282, "rel_err": 43.53 * 0.9}}
    expected_task = 100 * ((0.01 / 0.6906) / 2 + 0.1 / 2) / 2
    assert delta_m(better, baseline, directions, "task") == pytest.approx(expected_task)
    assert delta_m(better, baseline, directions, "metric") == pytest.approx(100 * (0.01 / 0.6906 + 0.1) / 4)


def test_metrics_on_hand_built_predictions(cityscapes_root: Path) -> None:
    tasks = _dataset(cityscapes_root, absent_classes="nan").tasks
    # gt [[0, -1, 6]], pred [[0, 3, 5]]: confusion (0,0)=1 (6,5)=1; IoU0 = 1, IoU5 = 0/1, IoU6 = 0/1, others 0/0
    seg = tasks["segmentation"].meter()
    seg.update(torch.tensor([[[0, 3, 5]]]), torch.tensor([[[0, -1, 6]]]))
    assert math.isnan(seg.compute()["miou"]) and seg.compute()["pixacc"] == 0.5
    skip = _dataset(cityscapes_root).tasks["segmentation"].meter()
    skip.update(torch.tensor([[[0, 3, 5]]]), torch.tensor([[[0, -1, 6]]]))
    assert skip.compute()["miou"] == pytest.approx(1 / 3)
    # disparity gt [0.2, 0, 0.4], pred [0.1, 0.3, 0.5]: errors 0.1, 0.1; rel 0.5, 0.25
    depth = tasks["depth"].meter()
    depth.update(torch.tensor([[[[0.1, 0.3, 0.5]]]]), torch.tensor([[[[0.2, 0.0, 0.4]]]]))
    assert depth.compute() == pytest.approx({"abs_err": 0.1, "rel_err": 0.375})


def test_augmentation_follows_the_reference_depth_convention(cityscapes_root: Path) -> None:
    """FAMO/MTAN divide the disparity by the zoom factor like depth; kept as the reference does (README)."""
    torch.manual_seed(0)
    split = _dataset(cityscapes_root, augment=True, scales=[1.5]).split("train")
    plain = _dataset(cityscapes_root).split("train")
    _, targets = split[0]
    _, original = plain[0]
    valid = targets["depth"][targets["depth"] > 0]
    assert valid.max() <= original["depth"].max() / 1.5 + 1e-6
    assert set(targets["segmentation"].unique().tolist()) <= set(original["segmentation"].unique().tolist())


def test_paper_preset(cityscapes_root: Path) -> None:
    config = resolve_run_config([{"dataset.name": "cityscapes", "train.data_root": str(cityscapes_root)}], ["paper"])
    assert (config.train.batch_size, config.train.epochs, config.train.lr, config.train.weight_decay) == (
        64,
        200,
        1e-4,
        1e-5,
    )
    assert (config.train.scheduler, config.train.step_size, config.train.gamma) == ("step", 100, 0.5)
    assert config.train.loss_transform == "log" and config.backbone.name == "resnet50-dilated"
    dataset = build_dataset(config)
    assert dataset.config.classes == 7 and not dataset.config.augment
    assert dataset.input_shape == (3, 128, 256)
    image, targets = dataset.split("train")[0]
    assert image.shape == (3, 128, 256) and targets["segmentation"].shape == (128, 256)
