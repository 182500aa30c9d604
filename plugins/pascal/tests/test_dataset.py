"""The fixture tree in the exact PASCAL_MT format -> the expected sample of every task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtlx import TaskSpec
from mtlx.config import build_component_config
from mtlx.errors import ConfigError, DataError
from mtlx_pascal import testing as t
from mtlx_pascal.classes import normals_valid_ids
from mtlx_pascal.dataset import PascalContext
from mtlx_pascal.decode import laplacian
from mtlx_pascal.layout import Layout
from mtlx_pascal.samples import decode_sample
from mtlx_pascal.transforms import IMAGENET_MEAN, IMAGENET_STD

ALL = ("semseg", "parts", "normals", "sal", "edge")

#: The parts label each image must decode to: (value, box) painted on 0, or None for "all 255".
PART_LABELS: dict[str, list[tuple[int, t.Box]] | None] = {
    "2008_000001": [
        (1, ((5, 13), (14, 22))),
        (2, ((13, 25), (12, 24))),
        (3, ((13, 19), (10, 12))),
        (4, ((19, 21), (24, 26))),
        (6, ((25, 35), (14, 18))),
    ],
    "2008_000002": None,
    "2008_000003": None,
    "2008_000004": [(1, ((2, 6), (25, 35))), (5, ((20, 30), (22, 30)))],
    "2008_000005": [(2, ((8, 10), (5, 15))), (6, ((36, 40), (5, 10)))],
    "2008_000006": None,
}


def expected_parts(image_id: str) -> np.ndarray:
    """The hand-written parts label of a fixture image (:data:`PART_LABELS`) at its original size."""
    boxes = PART_LABELS[image_id]
    if boxes is None:
        return np.full((t.HEIGHT, t.WIDTH), 255, dtype=np.uint8)
    out = np.zeros((t.HEIGHT, t.WIDTH), dtype=np.uint8)
    for value, ((r0, r1), (c0, c1)) in boxes:
        out[r0:r1, c0:c1] = value
    return out


def _dataset(root, **options) -> PascalContext:
    return PascalContext(build_component_config(PascalContext.Config, options, "dataset 'pascal'"), root)


def _nearest(values: np.ndarray, size: int) -> np.ndarray:
    h, w = values.shape[:2]
    rows = np.floor((np.arange(size) + 0.5) * h / size).astype(int)
    cols = np.floor((np.arange(size) + 0.5) * w / size).astype(int)
    return values[rows][:, cols]


# -- decoding at the original resolution -------------------------------------------------


def test_decoded_maps_of_every_task_match_the_fixture(pascal):
    layout = Layout(pascal.root)
    persons = layout.person_ids("train", pascal.train_ids)
    assert persons == {"2008_000001", "2008_000003", "2008_000004"}
    for image_id in pascal.train_ids:
        out = decode_sample(layout, image_id, ALL, image_id in persons)
        assert out["image"].shape == (t.HEIGHT, t.WIDTH, 3) and out["image"].dtype == np.uint8
        expected_semseg = t.voc_map() if image_id == "2008_000002" else t.semseg_map()  # VOC12 preferred
        np.testing.assert_array_equal(out["semseg"], expected_semseg)
        np.testing.assert_array_equal(out["parts"], expected_parts(image_id))
        np.testing.assert_array_equal(
            out["sal"], (t.saliency_png(t.TRAIN_IDS.index(image_id)) > 127).astype(np.float32)
        )
        edges = out["edge"].astype(bool)
        assert edges.any() and not (edges & ~(np.abs(laplacian(t.label_map())) > 0)).any()
        normals = out["normals"]
        for cls, colour in t.NORMAL_COLOURS.items():
            where = t.label_map() == cls
            expected = 2 * np.array(colour, dtype=np.float32) / 255 - 1 if cls in normals_valid_ids() else np.zeros(3)
            np.testing.assert_allclose(normals[where], np.broadcast_to(expected, (where.sum(), 3)), atol=1e-6)


def test_parts_of_images_without_people_are_fully_ignored(pascal):
    layout = Layout(pascal.root)
    for image_id in ("2008_000002", "2008_000003"):  # a car only; a person without parts
        out = decode_sample(layout, image_id, ("parts",), image_id in layout.person_ids("train", pascal.train_ids))
        assert (out["parts"] == 255).all()
    val = decode_sample(layout, "2008_000006", ("parts",), False)  # no object at all
    assert (val["parts"] == 255).all()


# -- samples through the torch dataset -----------------------------------------------------


def test_eval_sample_is_the_resized_decoded_sample(pascal):
    data = _dataset(pascal.root, size=64)
    image, targets = data.split("val")[0]
    assert data.input_shape == (3, 64, 64)
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert list(targets) == list(ALL)
    decoded = decode_sample(Layout(pascal.root), "2008_000005", ALL, True)
    for name in ("semseg", "parts"):
        assert targets[name].dtype == torch.int64 and targets[name].shape == (64, 64)
        np.testing.assert_array_equal(targets[name].numpy(), _nearest(decoded[name], 64))
    for name in ("sal", "edge"):
        assert targets[name].shape == (1, 64, 64)
        np.testing.assert_array_equal(targets[name][0].numpy(), _nearest(decoded[name], 64))
    np.testing.assert_array_equal(np.unique(targets["parts"]), [0, 2, 6])
    # normals: unit vectors inside the NYU-compatible blocks, 255 in all channels on the sky block
    normals = targets["normals"]
    assert normals.shape == (3, 64, 64)
    sky = normals[:, :, 48:]  # columns 36-47 of 48 -> 48-63 of 64
    assert (sky == 255).all()
    wall = normals[:, :, 24:40]  # well inside columns 16-31
    expected = torch.tensor(2 * np.array(t.NORMAL_COLOURS[440], dtype=np.float32) / 255 - 1)
    expected = expected / expected.norm()
    torch.testing.assert_close(wall, expected.view(3, 1, 1).expand_as(wall), atol=1e-5, rtol=0)
    # the image is ImageNet-normalised: undoing it gives values in [0, 1]
    raw = image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_training_samples_are_augmented_consistently(pascal):
    data = _dataset(pascal.root, size=48)
    train, plain = data.split("train"), _dataset(pascal.root, size=48, augment=False).split("train")
    torch.manual_seed(3)
    changed = 0
    for _ in range(6):
        _, targets = train[0]
        _, reference = plain[0]
        semseg = targets["semseg"]
        assert set(torch.unique(semseg).tolist()) <= {0, 7, 9, 15, 255}
        assert set(torch.unique(targets["sal"]).tolist()) <= {0.0, 1.0}
        valid = (targets["normals"] != 255).all(0)
        assert torch.allclose(targets["normals"][:, valid].norm(dim=0), torch.ones(int(valid.sum())), atol=1e-4)
        assert ((targets["normals"] == 255).all(0) | valid).all()  # 255 in all channels or none
        changed += not torch.equal(semseg, reference["semseg"])
    assert changed >= 5


def test_task_subset_option_and_canonical_order(pascal):
    data = _dataset(pascal.root, tasks="sal,semseg,parts")
    assert list(data.tasks) == ["semseg", "parts", "sal"]
    assert all(isinstance(spec, TaskSpec) for spec in data.tasks.values())
    _, targets = data.split("val")[0]
    assert list(targets) == ["semseg", "parts", "sal"]
    assert list(_dataset(pascal.root, tasks=["edge"]).tasks) == ["edge"]
    specs = _dataset(pascal.root).tasks
    assert [specs[t].out_channels for t in ALL] == [21, 7, 3, 1, 1]


def test_unknown_task_suggests_the_right_name(pascal):
    with pytest.raises(ConfigError, match=r"unknown task 'semsg'; did you mean 'semseg'"):
        _dataset(pascal.root, tasks="semsg,parts")


def test_parts_alone_keeps_only_images_with_people(pascal):
    split = _dataset(pascal.root, tasks="parts").split("train")
    assert split.ids == ["2008_000001", "2008_000003", "2008_000004"]
    assert len(_dataset(pascal.root, tasks="parts,sal").split("train")) == 4


def test_parts_cache_is_rebuilt_when_missing(pascal):
    cache = pascal.path("ImageSets", "Parts", "train.txt")
    expected = json.loads(cache.read_text())
    cache.unlink()
    _dataset(pascal.root, tasks="parts").split("train")
    assert json.loads(cache.read_text()) == expected


def test_splits_are_train_and_val_and_limit_truncates(pascal):
    data = _dataset(pascal.root, limit=1)
    assert data.splits == ("train", "val")
    assert data.split("val").ids == ["2008_000005"]
    assert len(data.split("train")) == 1
    with pytest.raises(ConfigError, match=r"no split 'tran'; did you mean 'train'"):
        data.split("tran")
    with pytest.raises(ConfigError, match=r"no split 'test'.*val is the benchmark's test set"):
        data.split("test")


def test_loss_weights_scale_the_task_losses(pascal):
    weighted = _dataset(pascal.root, loss_weights={"edge": 50.0})
    plain = _dataset(pascal.root)
    x, y = torch.randn(1, 1, 4, 4), (torch.rand(1, 1, 4, 4) > 0.5).float()
    torch.testing.assert_close(weighted.tasks["edge"].loss(x, y), 50 * plain.tasks["edge"].loss(x, y))
    with pytest.raises(ConfigError, match=r"loss_weights names unknown task 'edges'"):
        _dataset(pascal.root, loss_weights={"edges": 2.0})


# -- single-task baselines ------------------------------------------------------------------


def test_baseline_is_none_without_a_stored_file(pascal):
    assert _dataset(pascal.root).baseline() is None


def test_baseline_keeps_one_primary_metric_per_task(pascal):
    stored = {
        "semseg": {"miou": 0.66, "pixacc": 0.9},
        "parts": {"miou": 0.6},
        "normals": {"mean": 14.0, "median": 11.0},
        "sal": {"miou": 0.66, "maxf": 0.78},
        "edge": {"odsf": 0.7},
    }
    pascal.path("stl_baselines.json").write_text(json.dumps(stored))
    assert _dataset(pascal.root, tasks="semseg,sal").baseline() == {"semseg": {"miou": 0.66}, "sal": {"miou": 0.66}}
    assert _dataset(pascal.root, tasks="sal", sal_primary="maxf").baseline() == {"sal": {"maxf": 0.78}}
    assert _dataset(pascal.root).baseline()["normals"] == {"mean": 14.0}


def test_baseline_missing_a_task_names_the_file_and_the_command(pascal, tmp_path):
    path = tmp_path / "stl.json"
    path.write_text(json.dumps({"semseg": {"miou": 0.6}}))
    with pytest.raises(DataError, match=r"stl\.json: no single-task value for edge\.odsf.*dataset\.tasks=edge"):
        _dataset(pascal.root, tasks="semseg,edge", baseline_file=str(path)).baseline()
