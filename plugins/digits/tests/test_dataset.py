"""The digits Dataset: options, splits, samples and the stored baseline."""

from __future__ import annotations

import pytest
import torch

from mtlx import ConfigError
from mtlx.config import build_component_config
from mtlx.metrics import AccuracyMeter
from mtlx_dense import DepthMeter, SegmentationMeter
from mtlx_digits import DigitsDataset
from mtlx_digits import dataset as dataset_module
from mtlx_digits.render import draw_slots, load_sources, split_sources

WHERE = "dataset 'digits'"


def make(**options) -> DigitsDataset:
    """Build through the same path as ``-o dataset.KEY=VALUE`` (small sizes keep the tests fast)."""
    options = {"train_size": 40, "val_size": 20, "test_size": 20, **options}
    return DigitsDataset(build_component_config(DigitsDataset.Config, options, WHERE))


@pytest.fixture(scope="module")
def small() -> DigitsDataset:
    return make()


def test_default_config_is_the_documented_benchmark():
    config = DigitsDataset.Config()
    assert config.tasks == ("seg", "depth", "cls")
    assert (config.train_size, config.val_size, config.test_size) == (4000, 1000, 1000)
    assert config.num_digits == (2, 3) and config.seed == 0
    assert DigitsDataset.Config(tasks="seg", num_digits=3, seed=2).canvas_options() == {
        "seed": 2,
        "train_size": 4000,
        "val_size": 1000,
        "test_size": 1000,
        "num_digits": [3, 3],
    }


def test_sample_shapes_dtypes_and_batching(small):
    assert small.input_shape == (1, 32, 32) and small.splits == ("train", "val", "test")
    image, targets = small.split("train")[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert list(targets) == ["seg", "depth", "cls"]
    assert targets["seg"].shape == (32, 32) and targets["seg"].dtype == torch.int64
    assert targets["depth"].shape == (1, 32, 32) and targets["depth"].dtype == torch.float32
    assert targets["cls"].shape == () and targets["cls"].dtype == torch.int64
    images, batch = small.collate([small.split("val")[i] for i in range(5)])
    assert images.shape == (5, 1, 32, 32) and batch["seg"].shape == (5, 32, 32) and batch["cls"].shape == (5,)
    assert [len(small.split(s)) for s in small.splits] == [40, 20, 20]


def test_task_specs_use_the_nyuv2_metric_kinds(small):
    tasks = small.tasks
    assert [(t.kind, t.out_channels, t.dense) for t in tasks.values()] == [
        ("segmentation", 11, True),
        ("depth", 1, True),
        ("classification", 10, False),
    ]
    assert isinstance(tasks["seg"].meter(), SegmentationMeter) and tasks["seg"].meter().num_classes == 11
    assert isinstance(tasks["depth"].meter(), DepthMeter)
    assert isinstance(tasks["cls"].meter(), AccuracyMeter)


def test_losses_and_meters_accept_the_targets(small):
    """A perfect prediction built from the targets has zero loss and perfect metrics."""
    _, targets = small.collate([small.split("test")[i] for i in range(8)])
    perfect = {
        "seg": torch.nn.functional.one_hot(targets["seg"], 11).permute(0, 3, 1, 2).float() * 10,
        "depth": targets["depth"].clone(),
        "cls": torch.nn.functional.one_hot(targets["cls"], 10).float() * 10,
    }
    for name, spec in small.tasks.items():
        assert float(spec.loss(perfect[name], targets[name])) < 1e-3, name
        meter = spec.meter()
        meter.update(perfect[name], targets[name])
        result = meter.compute()
        best = {m: 1.0 if up else 0.0 for m, up in meter.higher_is_better.items()}
        assert result == pytest.approx(best), name


def test_same_seed_same_tensors_other_seed_differs(small):
    again, other = make(), make(seed=1)
    for split in small.splits:
        a, b, c = small.canvases(split), again.canvases(split), other.canvases(split)
        assert torch.equal(a.image, b.image) and torch.equal(a.seg, b.seg) and torch.equal(a.depth, b.depth)
        assert not torch.equal(a.image, c.image)


def test_val_and_test_canvases_do_not_depend_on_train_size(small):
    bigger = make(train_size=60)
    for split in ("val", "test"):
        assert torch.equal(bigger.canvases(split).image, small.canvases(split).image)


def test_source_digits_are_disjoint_across_splits():
    ds = make(train_size=1000, val_size=300, test_size=300)
    pools = split_sources(len(load_sources()[0]), ds.config.seed)
    sizes = {"train": 1000, "val": 300, "test": 300}
    drawn = {s: draw_slots(pools[s], sizes[s], ds.config.num_digits, ds._generator(i)) for i, s in enumerate(ds.splits)}
    assert all(torch.equal(torch.isfinite(ds.canvases(s).layer), present) for s, (_, present) in drawn.items())
    used = {s: set(pick[present].tolist()) for s, (pick, present) in drawn.items()}
    assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]
    assert len(used["test"]) > 250  # ~750 draws from the 360 held-out digits


def test_task_subset_keeps_the_same_data(small):
    subset = make(tasks="depth,seg")
    assert list(subset.tasks) == ["depth", "seg"]
    image, targets = subset.split("train")[3]
    full_image, full_targets = small.split("train")[3]
    assert list(targets) == ["depth", "seg"] and torch.equal(image, full_image)
    assert torch.equal(targets["seg"], full_targets["seg"])
    assert list(make(tasks=["cls"]).tasks) == ["cls"]
    assert list(make(tasks="normal").split("val")[0][1]) == ["normal"]


def test_num_digits_option(small):
    assert set(make(num_digits=3).canvases("train").layer.isfinite().sum(1).tolist()) == {3}  # inf: an empty slot
    assert set(make(num_digits=[1, 2]).canvases("train").layer.isfinite().sum(1).tolist()) == {1, 2}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"tasks": "seg,dpth"}, r"unknown task 'dpth'; did you mean 'depth'"),
        ({"tasks": ""}, r"tasks is empty"),
        ({"tasks": "seg,seg"}, r"listed twice"),
        ({"tasks": 3}, r"tasks must be task names"),
        ({"num_digits": [3, 2]}, r"1 <= min <= max <= 4, got \[3, 2\]"),
        ({"num_digits": 5}, r"1 <= min <= max <= 4"),
        ({"num_digits": "two"}, r"num_digits must be an int or \[min, max\]"),
        ({"train_size": 0}, r"'train_size' must be >= 1"),
        ({"test_size": "big"}, r"test_size expects an integer, got 'big'"),
        ({"seed": -1}, r"'seed' must be >= 0"),
        ({"train_sise": 10}, r"dataset 'digits' has no option 'train_sise'; did you mean 'train_size'"),
    ],
)
def test_bad_options_raise_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        build_component_config(DigitsDataset.Config, options, WHERE)


def test_unknown_split_raises_config_error(small):
    with pytest.raises(ConfigError, match=r"no split 'tset'; did you mean 'test'"):
        small.split("tset")


STORED = {
    "dataset": {"seed": 0, "train_size": 40, "val_size": 20, "test_size": 20, "num_digits": [2, 3]},
    "results": {"seg": {"miou": 0.5, "pixacc": 0.9}, "depth": {"abs_err": 0.3, "rel_err": 0.1}, "cls": {"acc": 0.8}},
}


def test_baseline_is_filtered_to_the_selected_tasks(monkeypatch, small):
    monkeypatch.setattr(dataset_module, "_stored_baseline", lambda: STORED)
    assert small.baseline() == STORED["results"]
    assert make(tasks="cls,seg").baseline() == {"cls": {"acc": 0.8}, "seg": {"miou": 0.5, "pixacc": 0.9}}


def test_baseline_is_none_for_other_canvases_or_unmeasured_tasks(monkeypatch, small):
    monkeypatch.setattr(dataset_module, "_stored_baseline", lambda: STORED)
    assert make(seed=1).baseline() is None
    assert make(num_digits=3).baseline() is None
    assert make(tasks="seg,normal").baseline() is None
    monkeypatch.setattr(dataset_module, "_stored_baseline", lambda: None)
    assert small.baseline() is None


def test_shipped_baseline_was_measured_on_the_default_canvases_with_the_recommended_budget():
    """Changing the canvases, the budget or the model invalidates the stored numbers: re-measure (README)."""
    stored = dataset_module._stored_baseline()
    recommended = DigitsDataset.recommended
    assert stored["train"] == {
        **{key.removeprefix("train."): value for key, value in recommended.items() if key.startswith("train.")},
        **{section: recommended[f"{section}.name"] for section in ("arch", "backbone", "head")},
        "optimizer": "adam",
        "seed": 0,
    }
    assert stored["dataset"] == DigitsDataset.Config().canvas_options()
    for name, metrics in stored["results"].items():
        assert set(metrics) == set(dataset_module.TASKS[name].meter().higher_is_better), name
        assert stored["commands"][name].endswith(f"-o dataset.tasks={name} --out runs/digits-stl-{name}")


@pytest.mark.parametrize(
    ("split", "image_sum", "seg_sum", "depth_sum", "cls"),
    [
        ("train", 3174.9497, 12692, 74102.5, [3, 0, 4, 9, 2, 3, 6, 4, 0, 2, 5, 3, 3, 8, 4, 6]),
        ("val", 3196.4820, 12909, 74740.75, [0, 9, 3, 3, 0, 6, 8, 1, 6, 2, 0, 8, 3, 6, 1, 2]),
        ("test", 3480.8404, 18045, 73864.75, [8, 5, 3, 1, 6, 7, 9, 8, 9, 5, 7, 0, 5, 4, 0, 9]),
    ],
)
def test_canvases_match_the_ones_the_baseline_was_measured_on(split, image_sum, seg_sum, depth_sum, cls):
    """A fingerprint of the rendering: if this fails, the stored baseline is stale; re-measure it (README)."""
    canvases = DigitsDataset(DigitsDataset.Config(train_size=16, val_size=16, test_size=16)).canvases(split)
    assert float(canvases.image.double().sum()) == pytest.approx(image_sum, abs=1e-3)
    assert int(canvases.seg.sum()) == seg_sum and float(canvases.depth.double().sum()) == depth_sum
    assert canvases.cls.tolist() == cls
