"""Office datasets on the tiny fixture: samples, labels from the files, preprocessing, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mtlx
from mtlx import ConfigError, DataError
from mtlx.data import DATA_ENV
from mtlx.metrics import delta_m
from mtlx_office import Office31, OfficeHome
from mtlx_office.images import IMAGENET_MEAN, IMAGENET_STD

from .conftest import DOMAINS, SPLIT_SIZES


def _office(root, **options):
    return Office31(Office31.Config(**options), root)


def test_split_is_one_dataset_per_domain_with_labels_from_the_list_files(office31):
    root, written = office31
    dataset = _office(root)
    assert Office31.multi_input
    assert tuple(dataset.tasks) == DOMAINS
    for split, size in SPLIT_SIZES.items():
        per_domain = dataset.split(split)
        assert tuple(per_domain) == DOMAINS
        for domain in DOMAINS:
            assert len(per_domain[domain]) == size
            labels = [per_domain[domain][i][1] for i in range(size)]
            assert labels == [label for _, label in written[domain][split]]


def test_image_is_resized_rgb_and_imagenet_normalised(office31):
    root, written = office31
    image, _ = _office(root).split("train")["amazon"][0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    path = root / written["amazon"]["train"][0][0]
    expected = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float64) / 255
    expected = (expected - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_grayscale_jpeg_becomes_three_equal_channels(office31):
    root, written = office31
    split = _office(root, image_size=32).split("train")["amazon"]
    gray = [i for i, (p, _) in enumerate(written["amazon"]["train"]) if Image.open(root / p).mode == "L"]
    assert gray, "the fixture must contain a grayscale JPEG"
    image, _ = split[gray[0]]
    assert image.shape == (3, 32, 32)
    pixels = image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    torch.testing.assert_close(pixels[0], pixels[1])
    torch.testing.assert_close(pixels[1], pixels[2])


def test_tasks_are_31_way_classification_with_accuracy(office31):
    root, _ = office31
    spec = _office(root).tasks["dslr"]
    assert (spec.kind, spec.out_channels, spec.dense) == ("classification", 31, False)
    meter = spec.meter()
    meter.update(torch.tensor([[0.0, 2.0], [3.0, 1.0]]), torch.tensor([1, 1]))
    assert meter.compute() == {"acc": 0.5}
    loss = spec.loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
    assert float(loss) == pytest.approx(np.log(2))


def test_domain_subset_and_unknown_domain(office31):
    root, _ = office31
    dataset = _office(root, tasks="webcam,amazon")
    assert tuple(dataset.tasks) == ("webcam", "amazon")
    assert tuple(dataset.split("val")) == ("webcam", "amazon")
    assert dataset.baseline() == {"webcam": {"acc": 0.9685}, "amazon": {"acc": 0.8661}}
    with pytest.raises(ConfigError, match=r"office-31 has no domain 'Amazon'; did you mean 'amazon'"):
        _office(root, tasks="Amazon")


def test_baseline_is_in_the_meters_units_and_gives_zero_delta(office31):
    root, _ = office31
    dataset = _office(root)
    baseline = dataset.baseline()
    assert baseline == {"amazon": {"acc": 0.8661}, "dslr": {"acc": 0.9563}, "webcam": {"acc": 0.9685}}
    hib = {t: {"acc": True} for t in baseline}
    assert delta_m(baseline, baseline, hib) == 0.0
    better = {t: {"acc": m["acc"] * 1.01} for t, m in baseline.items()}
    assert delta_m(better, baseline, hib) == pytest.approx(1.0)
    assert OfficeHome.stl_accuracy == {"Art": 0.6559, "Clipart": 0.7960, "Product": 0.9047, "Real_World": 0.8000}


def test_missing_image_names_list_file_and_line(office31):
    root, written = office31
    relative = written["dslr"]["test"][1][0]
    (root / relative).unlink()
    with pytest.raises(DataError, match=rf"dslr_test.txt:2: image .*{relative} does not exist"):
        _office(root).split("test")


def test_undecodable_image_names_list_file_and_line(office31):
    root, written = office31
    relative = written["webcam"]["train"][2][0]
    (root / relative).write_bytes(b"not a jpeg")
    split = _office(root).split("train")["webcam"]
    with pytest.raises(DataError, match=rf"webcam_train.txt:3: image .*{relative} cannot be decoded"):
        split[2]


def test_malformed_list_file_fails_at_split_time_with_file_and_line(office31):
    root, _ = office31
    list_file = root / "data_txt" / "office-31" / "amazon_val.txt"
    list_file.write_text(list_file.read_text().rstrip("\n"))
    with pytest.raises(DataError, match=r"amazon_val.txt:2: the last line does not end with a newline"):
        _office(root).split("val")


def test_missing_list_file_points_to_libmtl(office31):
    root, _ = office31
    (root / "data_txt" / "office-31" / "webcam_test.txt").unlink()
    with pytest.raises(DataError, match=r"webcam_test.txt does not exist; the list files come from LibMTL"):
        _office(root).split("test")


def test_list_dir_option(office31, tmp_path):
    root, _ = office31
    moved = tmp_path / "lists"
    (root / "data_txt" / "office-31").rename(moved)
    assert len(_office(root, list_dir=str(moved)).split("train")["dslr"]) == SPLIT_SIZES["train"]


def test_missing_root_explains_layout(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(DataError, match=r"--data-root.*data_txt/office-31/<domain>_\{train,val,test\}.txt.*LibMTL"):
        Office31(Office31.Config(), None)
    with pytest.raises(DataError, match=r"office-home.*does not exist.*Real_World.*data_txt/office-home"):
        OfficeHome(OfficeHome.Config(), tmp_path / "nowhere")


def test_unknown_split(office31):
    root, _ = office31
    with pytest.raises(ConfigError, match=r"no split 'tset'; did you mean 'test'"):
        _office(root).split("tset")


def test_registered_under_both_names():
    registries = mtlx.PluginManager().registries
    assert registries.datasets.get("office-31") is Office31
    assert registries.datasets.get("office-home") is OfficeHome


@pytest.mark.parametrize("name", ["office-31", "office-home"])
def test_paper_preset_resolves_to_the_papers_training(name):
    """The Rep-MTL paper trains Office-31 and Office-Home with the log loss transform (its Appendix A), on
    LibMTL's office recipe: 100 epochs, batch 64, Adam 1e-4, weight decay 1e-5."""
    from mtlx.config import resolve_run_config

    train = resolve_run_config([{"dataset.name": name}], ["paper"]).train
    assert (train.loss_transform, train.epochs) == ("log", 100)
    assert (train.batch_size, train.optimizer, train.lr, train.weight_decay) == (64, "adam", 1e-4, 1e-5)
    assert resolve_run_config([{"dataset.name": name}]).train.loss_transform == "none"  # not without the preset
