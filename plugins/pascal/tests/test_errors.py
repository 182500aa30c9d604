"""Missing and malformed files give a DataError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from mtlx.config import build_component_config
from mtlx.errors import DataError
from mtlx_pascal.dataset import PascalContext


def _dataset(root, **options) -> PascalContext:
    return PascalContext(build_component_config(PascalContext.Config, options, "dataset 'pascal'"), root)


def test_missing_root_says_how_to_point_at_the_data(monkeypatch):
    monkeypatch.delenv("MTLX_DATA", raising=False)
    with pytest.raises(DataError, match=r"pass --data-root PATH or set MTLX_DATA.*JPEGImages.*PASCAL_MT\.tgz"):
        _dataset(None)


def test_mtlx_data_points_at_the_pascal_subdirectory(pascal, monkeypatch):
    monkeypatch.setenv("MTLX_DATA", str(pascal.root.parent))
    with pytest.raises(DataError, match=r"directory \S+/pascal does not exist"):
        _dataset(None)
    (pascal.root.parent / "pascal").symlink_to(pascal.root)
    assert len(_dataset(None).split("val")) == 2


@pytest.mark.parametrize(
    ("task", "relative"),
    [
        ("sal", "sal_distill/2008_000003.png"),
        ("normals", "normals_distill/2008_000003.png"),
        ("edge", "pascal-context/trainval/2008_000003.mat"),
        ("parts", "human_parts/2008_000003.mat"),
        ("semseg", "semseg/pascal-context/2008_000003.png"),
    ],
)
def test_missing_task_file_is_named(pascal, task, relative):
    pascal.path(relative).unlink()
    with pytest.raises(DataError, match=rf"missing file\(s\) .*{relative}"):
        _dataset(pascal.root, tasks=task).split("train")
    other = "edge" if task != "edge" and task != "normals" else "semseg"
    assert len(_dataset(pascal.root, tasks=other).split("train")) == 4  # other tasks do not need the file


def test_missing_split_list_is_named(pascal):
    pascal.path("ImageSets", "Context", "val.txt").unlink()
    with pytest.raises(DataError, match=r"ImageSets/Context/val\.txt"):
        _dataset(pascal.root).split("val")


def test_garbage_human_parts_mat_is_named(pascal):
    pascal.path("human_parts", "2008_000001.mat").write_bytes(b"this is not a mat file" * 10)
    split = _dataset(pascal.root, tasks="parts").split("train")
    with pytest.raises(DataError, match=r"human_parts/2008_000001\.mat is not a readable MATLAB \.mat file"):
        split[0]


def test_human_parts_mat_without_anno_struct_is_named(pascal):
    scipy.io.savemat(str(pascal.path("human_parts", "2008_000004.mat")), {"objects": np.zeros((2, 2))})
    split = _dataset(pascal.root, tasks="parts").split("train")
    with pytest.raises(DataError, match=r"human_parts/2008_000004\.mat: malformed human_parts \.mat.*anno"):
        split[2]


def test_human_parts_mat_with_a_wrong_object_layout_is_named(pascal):
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0] = ("x", np.array([[1.5, 2.5]]))  # objects that are numbers, not structs
    scipy.io.savemat(str(pascal.path("human_parts", "2008_000001.mat")), {"anno": anno})
    split = _dataset(pascal.root, tasks="parts").split("train")
    with pytest.raises(DataError, match=r"human_parts/2008_000001\.mat: malformed human_parts \.mat"):
        split[0]


def test_garbage_label_map_mat_is_named(pascal):
    pascal.path("pascal-context", "trainval", "2008_000002.mat").write_bytes(b"\x00" * 200)
    split = _dataset(pascal.root, tasks="edge").split("train")
    with pytest.raises(DataError, match=r"trainval/2008_000002\.mat is not a readable MATLAB \.mat file"):
        split[1]


def test_corrupt_png_is_named(pascal):
    pascal.path("sal_distill", "2008_000001.png").write_bytes(b"\x89PNG broken")
    split = _dataset(pascal.root, tasks="sal").split("train")
    with pytest.raises(DataError, match=r"sal_distill/2008_000001\.png is not a readable image"):
        split[0]


def test_corrupt_parts_cache_is_named(pascal):
    pascal.path("ImageSets", "Parts", "val.txt").write_text("{not json")
    with pytest.raises(DataError, match=r"ImageSets/Parts/val\.txt: the human-parts cache is not valid JSON"):
        _dataset(pascal.root, tasks="parts").split("val")
