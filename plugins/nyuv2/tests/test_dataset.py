"""The nyuv2 dataset on a fixture in the exact release format: samples, splits, options, root lookup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtlx.config import build_component_config
from mtlx.data import make_loader
from mtlx.errors import ConfigError, DataError
from mtlx_nyuv2.dataset import NYUv2


def _dataset(root: Path, **options) -> NYUv2:
    return NYUv2(build_component_config(NYUv2.Config, options, "dataset 'nyuv2'"), root)


def test_samples_are_chw_tensors_with_the_file_values(nyuv2_root: Path) -> None:
    dataset = _dataset(nyuv2_root)
    image, targets = dataset.split("train")[1]
    assert image.shape == (3, 32, 64) and image.dtype == torch.float32
    assert set(targets) == {"segmentation", "depth", "normal"}
    assert targets["segmentation"].shape == (32, 64) and targets["segmentation"].dtype == torch.int64
    assert targets["depth"].shape == (1, 32, 64) and targets["depth"].dtype == torch.float32
    assert targets["normal"].shape == (3, 32, 64) and targets["normal"].dtype == torch.float32
    files = {d: np.load(nyuv2_root / "train" / d / "1.npy") for d in ("image", "label", "depth", "normal")}
    assert files["image"].dtype == np.float64 and files["label"].dtype == np.float64  # the release's dtypes
    torch.testing.assert_close(image, torch.from_numpy(files["image"]).permute(2, 0, 1).float())
    torch.testing.assert_close(targets["depth"], torch.from_numpy(files["depth"]).permute(2, 0, 1))
    torch.testing.assert_close(targets["normal"], torch.from_numpy(files["normal"]).permute(2, 0, 1))
    assert torch.equal(targets["segmentation"], torch.from_numpy(files["label"]).long())


def test_ignore_values_survive_loading(nyuv2_root: Path) -> None:
    _, targets = _dataset(nyuv2_root).split("train")[0]
    label = np.load(nyuv2_root / "train/label/0.npy")
    depth = np.load(nyuv2_root / "train/depth/0.npy")[..., 0]
    normal = np.load(nyuv2_root / "train/normal/0.npy")
    assert (label == -1).any() and (depth == 0).any() and (np.abs(normal).sum(-1) == 0).any()
    assert torch.equal(targets["segmentation"] == -1, torch.from_numpy(label == -1))
    assert torch.equal(targets["depth"][0] == 0, torch.from_numpy(depth == 0))
    assert torch.equal(targets["normal"].abs().sum(0) == 0, torch.from_numpy(np.abs(normal).sum(-1) == 0))


def test_splits_are_train_and_test_read_from_val(nyuv2_root: Path) -> None:
    dataset = _dataset(nyuv2_root)
    assert dataset.splits == ("train", "test")
    assert len(dataset.split("train")) == 4 and len(dataset.split("test")) == 2
    image, _ = dataset.split("test")[1]
    assert torch.equal(image, torch.from_numpy(np.load(nyuv2_root / "val/image/1.npy")).permute(2, 0, 1).float())
    with pytest.raises(ConfigError, match="nyuv2 has no split 'val'.*val/ directory is the test set"):
        dataset.split("val")


def test_tasks_input_shape_and_loader_batches(nyuv2_root: Path) -> None:
    dataset = _dataset(nyuv2_root)
    assert dataset.input_shape == (3, 32, 64)
    spec = dataset.tasks
    assert [(t, s.kind, s.out_channels, s.dense) for t, s in spec.items()] == [
        ("segmentation", "segmentation", 13, True),
        ("depth", "depth", 1, True),
        ("normal", "normal", 3, True),
    ]
    images, targets = next(iter(make_loader(dataset.split("train"), batch_size=3, shuffle=True, seed=0)))
    assert images.shape == (3, 3, 32, 64)
    assert targets["segmentation"].shape == (3, 32, 64) and targets["depth"].shape == (3, 1, 32, 64)


def test_resolution_option_resamples_every_field(nyuv2_root: Path) -> None:
    dataset = _dataset(nyuv2_root, resolution=[16, 32])
    assert dataset.input_shape == (3, 16, 32)
    image, targets = dataset.split("train")[0]
    assert image.shape == (3, 16, 32) and targets["normal"].shape == (3, 16, 32)
    label = np.load(nyuv2_root / "train/label/0.npy")
    # nearest: every label of the smaller map is a label of the original at pixel (2i, 2j)
    assert torch.equal(targets["segmentation"], torch.from_numpy(label[::2, ::2]).long())
    depth = np.load(nyuv2_root / "train/depth/0.npy")[..., 0]
    assert torch.equal(targets["depth"][0], torch.from_numpy(depth[::2, ::2]))  # a whole frame: no depth rescaling


def test_data_root_from_environment(nyuv2_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLX_DATA", str(nyuv2_root.parent))
    assert _dataset(None).root == nyuv2_root


def test_missing_data_names_the_layout_and_the_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLX_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"nyuv2.*does not exist.*train,val.*image,label,depth,normal.*lorenmt/mtan"):
        _dataset(None)
    monkeypatch.delenv("MTLX_DATA")
    with pytest.raises(DataError, match="pass --data-root PATH or set MTLX_DATA"):
        _dataset(None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metric_aggregation": "median"}, "metric_aggregation"),
        ({"normal_median": "approx"}, "normal_median"),
        ({"normal_median": "histogram", "metric_aggregation": "batch"}, "needs metric_aggregation=global"),
        ({"absent_classes": "ignore"}, "absent_classes"),
        ({"baseline": "mtan"}, "baseline"),
        ({"resolution": [288]}, "resolution must be"),
        ({"scales": [0.5, 1.0]}, "scales must be"),
        ({"resolutoin": [288, 384]}, "did you mean 'resolution'"),
    ],
)
def test_invalid_options_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_component_config(NYUv2.Config, options, "dataset 'nyuv2'")
