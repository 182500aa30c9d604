"""The qm9 dataset on a small real subset: target slicing, units, standardisation, splits, samples, cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import mtlx
from mtlx import ConfigError, DataError
from mtlx.metrics import delta_m
from mtlx_qm9 import QM9Dataset
from mtlx_qm9 import dataset as dataset_module
from mtlx_qm9 import source as source_module
from mtlx_qm9 import store as store_module
from mtlx_qm9.targets import STL_BASELINE, TASK_NAMES

from .conftest import write_source

ENERGY_TASKS = {"homo", "lumo", "zpve", "u0", "u", "h", "g"}


def _dataset(source, cache, **options):
    options = {"test_size": 10, "val_size": 10, **options}
    return QM9Dataset(QM9Dataset.Config(source_dir=str(source), **options), cache)


def test_targets_are_the_eleven_pyg_columns_in_order(small_source, tmp_path):
    dataset = _dataset(small_source, tmp_path)
    assert tuple(dataset.tasks) == TASK_NAMES
    raw = dataset.store.y[:, [0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11]]
    restored = dataset._targets.double() * dataset.std + dataset.mean
    torch.testing.assert_close(restored, raw, rtol=1e-6, atol=1e-4)
    index = dataset.store.index  # sorted by QM9 number, as PyG orders them (58 is an excluded molecule)
    assert index[:5].tolist() == [1, 2, 3, 4, 5] and bool((index.diff() > 0).all()) and 58 not in index.tolist()


def test_splits_are_first_test_then_val_then_the_rest(small_source, tmp_path):
    dataset = _dataset(small_source, tmp_path, test_size=2, val_size=3, split_seed=7)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(7))
    assert dataset.indices("test").tolist() == perm[:2].tolist()
    assert dataset.indices("val").tolist() == perm[2:5].tolist()
    assert dataset.indices("train").tolist() == perm[5:].tolist()
    assert [len(dataset.split(s)) for s in ("train", "val", "test")] == [55, 3, 2]
    limited = _dataset(small_source, tmp_path, test_size=2, val_size=3, split_seed=7, train_size=20)
    assert limited.indices("train").tolist() == perm[5:25].tolist()
    assert _dataset(small_source, tmp_path, split_seed=8).indices("test").tolist() != dataset.indices("test").tolist()


def test_permutation_file_like_libmtl_random_split(small_source, tmp_path):
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(3))
    torch.save(perm, tmp_path / "random_split.t")
    dataset = _dataset(small_source, tmp_path, test_size=4, val_size=4, permutation=str(tmp_path / "random_split.t"))
    assert dataset.indices("test").tolist() == perm[:4].tolist()
    torch.save(torch.arange(59), tmp_path / "short.t")
    with pytest.raises(DataError, match=r"short.t is not a permutation of the 60 molecules"):
        _dataset(small_source, tmp_path, permutation=str(tmp_path / "short.t"))
    with pytest.raises(DataError, match=r"cannot read the permutation file .*missing.t"):
        _dataset(small_source, tmp_path, permutation=str(tmp_path / "missing.t"))


def test_standardisation_uses_train_or_full_statistics(small_source, tmp_path):
    train_stats = _dataset(small_source, tmp_path, standardize="train")
    full_stats = _dataset(small_source, tmp_path, standardize="full")
    raw = train_stats.store.y[:, [0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11]].numpy()
    rows = train_stats.indices("train").numpy()
    np.testing.assert_allclose(train_stats.mean.numpy(), raw[rows].mean(0))
    np.testing.assert_allclose(train_stats.std.numpy(), raw[rows].std(0, ddof=1))
    np.testing.assert_allclose(full_stats.mean.numpy(), raw.mean(0))
    np.testing.assert_allclose(full_stats.std.numpy(), raw.std(0, ddof=1))
    assert not np.allclose(train_stats.mean.numpy(), full_stats.mean.numpy())
    z = train_stats._targets[train_stats.indices("train")].double()
    torch.testing.assert_close(z.mean(0), torch.zeros(11, dtype=torch.float64), atol=1e-6, rtol=0)


def test_mae_is_destandardised_and_in_mev_for_the_seven_energies(small_source, tmp_path):
    dataset = _dataset(small_source, tmp_path)
    for k, (name, spec) in enumerate(dataset.tasks.items()):
        assert (spec.kind, spec.out_channels, spec.dense) == ("regression", 1, False)
        meter = spec.meter()
        meter.update(torch.zeros(4, 1), torch.full((4,), 0.5))  # off by half a standard deviation
        factor = 1000.0 if name in ENERGY_TASKS else 1.0
        assert meter.compute()["mae"] == pytest.approx(0.5 * float(dataset.std[k]) * factor)
    assert float(dataset.tasks["u0"].loss(torch.zeros(2, 1), torch.tensor([1.0, 3.0]))) == pytest.approx(5.0)


def test_sample_is_a_complete_graph_with_distance(small_source, tmp_path):
    dataset = _dataset(small_source, tmp_path)
    split = dataset.split("train")
    graph, y = split[0]
    n = graph.num_nodes
    assert graph.x.shape == (n, 11) and graph.edge_attr.shape == (n * (n - 1), 5)
    assert graph.edge_index.shape == (2, n * (n - 1))
    row, col = graph.edge_index
    torch.testing.assert_close(graph.edge_attr[:, 4], (graph.pos[row] - graph.pos[col]).norm(dim=-1))
    bonded = graph.edge_attr[:, :4].sum(1)
    i = int(dataset.indices("train")[0])
    assert int(bonded.sum()) == dataset.store.bonds(i).stop - dataset.store.bonds(i).start
    assert y.shape == (11,)


def test_collate_builds_a_pyg_batch_and_per_task_targets(small_source, tmp_path):
    dataset = _dataset(small_source, tmp_path)
    split = dataset.split("val")
    samples = [split[i] for i in range(4)]
    batch, targets = dataset.collate(samples)
    assert isinstance(batch, Batch) and batch.num_graphs == 4
    assert batch.num_nodes == sum(g.num_nodes for g, _ in samples)
    assert list(targets) == list(TASK_NAMES)
    torch.testing.assert_close(targets["g"], torch.stack([y[9] for _, y in samples]))


def _unloaded(**options) -> QM9Dataset:
    """A dataset with these options whose molecules are not read: baseline() depends on the options only."""
    dataset = object.__new__(QM9Dataset)
    dataset.config = QM9Dataset.Config(**options)
    return dataset


def test_baseline_is_the_papers_stl_on_the_papers_splits_and_gives_zero_delta():
    baseline = _unloaded().baseline()
    assert baseline == {name: {"mae": STL_BASELINE[name]} for name in TASK_NAMES}
    assert baseline["homo"] == {"mae": 60.576} and baseline["mu"] == {"mae": 0.0671}
    hib = {t: {"mae": False} for t in baseline}
    assert delta_m(baseline, baseline, hib, "metric") == 0.0


def test_no_baseline_on_splits_nobody_measured():
    # Delta_m of a 4k-molecule run against the papers' 110k single-task models was -3000 %.
    assert _unloaded(test_size=10, val_size=10, train_size=30).baseline() is None


def test_cpu_small_baseline_is_the_stored_single_task_runs_of_that_preset(monkeypatch):
    preset = {k.split(".", 1)[1]: v for k, v in QM9Dataset.presets["cpu-small"].items() if k.startswith("dataset.")}
    stored = {
        "dataset": QM9Dataset.Config(**preset).split_options(),
        "results": {name: {"mae": float(k + 1)} for k, name in enumerate(TASK_NAMES)},
    }
    monkeypatch.setattr(dataset_module, "_measured_baseline", lambda: stored)
    assert _unloaded(**preset, tasks="mu,cv").baseline() == {"mu": {"mae": 1.0}, "cv": {"mae": 11.0}}
    assert _unloaded(**{**preset, "split_seed": 1}).baseline() is None


def test_shipped_baseline_file_names_every_task_and_the_cpu_small_splits():
    stored = dataset_module._measured_baseline()
    assert stored is not None, "stl_baseline.json is missing from the package"
    preset = {k.split(".", 1)[1]: v for k, v in QM9Dataset.presets["cpu-small"].items() if k.startswith("dataset.")}
    assert stored["dataset"] == QM9Dataset.Config(**preset).split_options()
    assert set(stored["results"]) == set(TASK_NAMES)
    assert all(math.isfinite(stored["results"][t]["mae"]) and stored["results"][t]["mae"] > 0 for t in TASK_NAMES)


def test_a_task_subset_selects_tasks_and_targets(small_source, tmp_path):
    dataset = _dataset(small_source, tmp_path, tasks="homo,mu")
    assert list(dataset.tasks) == ["mu", "homo"]  # the dataset's order
    split = dataset.split("train")
    _, targets = dataset.collate([split[0], split[1]])
    assert list(targets) == ["mu", "homo"]
    torch.testing.assert_close(targets["homo"], torch.stack([split[i][1][2] for i in range(2)]))
    with pytest.raises(ValueError, match=r"unknown task 'muu'; did you mean 'mu'"):
        _dataset(small_source, tmp_path, tasks="muu")


def test_errors_for_bad_options_and_unknown_split(small_source, tmp_path):
    with pytest.raises(ConfigError, match=r"no molecules left for train \(60 molecules, test_size=30, val_size=30\)"):
        _dataset(small_source, tmp_path, test_size=30, val_size=30)
    with pytest.raises(ConfigError, match=r"no split 'valid'; did you mean 'val'"):
        _dataset(small_source, tmp_path).split("valid")
    with pytest.raises(ValueError):
        QM9Dataset.Config(standardize="batch")


def test_cache_is_built_once_and_rebuilt_when_the_source_changes(tmp_path, monkeypatch):
    source = write_source(tmp_path / "src", 12)
    cache = tmp_path / "cache"
    first = _dataset(source, cache, test_size=2, val_size=2)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"

    def no_build(records):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(store_module, "build_store", no_build)
    again = _dataset(source, cache, test_size=2, val_size=2)
    torch.testing.assert_close(again.store.y, first.store.y)
    monkeypatch.undo()
    write_source(source, 14)  # a changed source file gets a new cache entry
    assert len(_dataset(source, cache, test_size=2, val_size=2).store) == 14
    assert len(list(cache.iterdir())) == 2


def test_unreadable_cache_is_rebuilt_with_a_warning(tmp_path):
    source = write_source(tmp_path / "src", 12)
    cache = tmp_path / "cache"
    _dataset(source, cache, test_size=2, val_size=2)
    (path,) = cache.iterdir()
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.warns(UserWarning, match=r"rebuilding the unreadable cache .*qm9-graphs"):
        assert len(_dataset(source, cache, test_size=2, val_size=2).store) == 12
    assert len(_dataset(source, cache, test_size=2, val_size=2).store) == 12  # rewritten: no warning now


def test_missing_package_and_source_files(monkeypatch, tmp_path):
    with pytest.raises(DataError, match=r"qm9_part1.csv is missing.*pip install qm9pack==1.0.3"):
        _dataset(tmp_path, tmp_path)
    monkeypatch.setattr(source_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"'qm9pack' package, which is not installed: .*pip install qm9pack==1.0.3"):
        QM9Dataset(QM9Dataset.Config(), tmp_path)


def test_registered_dataset_and_backbone():
    registries = mtlx.PluginManager().registries
    assert registries.datasets.get("qm9") is QM9Dataset
    assert registries.backbones.get("mpnn").__name__ == "MPNN"
