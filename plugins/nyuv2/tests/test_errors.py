"""Corrupt or inconsistent release files: a DataError naming the file, and no split handed out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mtlx.errors import DataError
from mtlx_nyuv2.dataset import NYUv2
from mtlx_nyuv2.testing import write_nyuv2


def _open_train(root: Path) -> None:
    NYUv2(NYUv2.Config(), root).split("train")


def _save(root: Path, rel: str, array: np.ndarray) -> None:
    np.save(root / rel, array)


def _rename_index(root: Path, old: int, new: int) -> None:
    for field in ("image", "label", "depth", "normal"):
        (root / f"train/{field}/{old}.npy").rename(root / f"train/{field}/{new}.npy")


def _truncate(root: Path, rel: str) -> None:
    path = root / rel
    path.write_bytes(path.read_bytes()[:-100])


def _remove_tree(path: Path) -> None:
    for f in sorted(path.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    path.rmdir()


def _empty(root: Path) -> None:
    for field in ("image", "label", "depth", "normal"):
        for f in (root / "train" / field).glob("*.npy"):
            f.unlink()


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "wrong depth shape": (
        lambda r: _save(r, "train/depth/2.npy", np.ones((32, 64), np.float32)),
        r"train/depth/2\.npy: shape \(32, 64\), expected \(32, 64, 1\)",
    ),
    "wrong image size": (
        lambda r: _save(r, "train/image/3.npy", np.zeros((32, 60, 3))),
        r"train/image/3\.npy: shape \(32, 60, 3\), expected \(32, 64, 3\)",
    ),
    "missing depth file": (
        lambda r: (r / "train/depth/1.npy").unlink(),
        r"train/depth/1\.npy is missing .*train/image/1\.npy has no depth file",
    ),
    "extra label file": (
        lambda r: _save(r, "train/label/4.npy", np.zeros((32, 64))),
        r"train/label/4\.npy has no image .*train/image/4\.npy",
    ),
    "uint8 image": (
        lambda r: _save(r, "train/image/0.npy", np.zeros((32, 64, 3), np.uint8)),
        r"train/image/0\.npy: dtype uint8, expected floating point",
    ),
    "boolean label": (
        lambda r: _save(r, "train/label/2.npy", np.zeros((32, 64), bool)),
        r"train/label/2\.npy: dtype bool, expected floating point or signed integer",
    ),
    "object array": (
        lambda r: np.save(r / "train/normal/1.npy", np.empty((32, 64, 3), object), allow_pickle=True),
        r"train/normal/1\.npy: holds Python objects",
    ),
    "non-contiguous indices": (
        lambda r: _rename_index(r, 2, 7),
        r"train/image/2\.npy is missing: indices must be contiguous",
    ),
    "zero-padded name": (
        lambda r: (r / "train/image/3.npy").rename(r / "train/image/03.npy"),
        r"train/image/03\.npy: unexpected file name",
    ),
    "truncated file": (lambda r: _truncate(r, "train/normal/3.npy"), r"train/normal/3\.npy: truncated"),
    "not an npy file": (
        lambda r: (r / "train/depth/0.npy").write_bytes(b"PNG..."),
        r"train/depth/0\.npy: not a readable \.npy file",
    ),
    "missing directory": (
        lambda r: _remove_tree(r / "train/normal"),
        r"directory .*train/normal is missing",
    ),
    "empty split": (_empty, r"empty split: .*train/image holds no \.npy files"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_release_raises_naming_the_file(nyuv2_root: Path, corruption: str) -> None:
    corrupt, message = CORRUPTIONS[corruption]
    corrupt(nyuv2_root)
    dataset = NYUv2(NYUv2.Config(), nyuv2_root)
    with pytest.raises(DataError, match=message):
        dataset.split("train")
    with pytest.raises(DataError, match=message):  # nothing half-loaded was cached: it fails again
        dataset.split("train")


def test_missing_split_directory(nyuv2_root: Path) -> None:
    _remove_tree(nyuv2_root / "val")
    with pytest.raises(DataError, match=r"split directory .*nyuv2/val does not exist"):
        NYUv2(NYUv2.Config(), nyuv2_root).split("test")


VALUE_CORRUPTIONS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], str]] = {
    "label id 13": (
        "label",
        lambda a: np.where(a == 0, 13.0, a),
        r"train/label/1\.npy: label ids range over \[-1, 13\]",
    ),
    "label id -2": ("label", lambda a: np.where(a == 0, -2.0, a), r"label ids range over \[-2, 12\]"),
    "fractional label": ("label", lambda a: a + 0.5, r"train/label/1\.npy: label holds non-integer values"),
    "image in 0..255": (
        "image",
        lambda a: a * 255.0,
        r"train/image/1\.npy: image values range over .*expected \[0, 1\]",
    ),
    "negative depth": ("depth", lambda a: a - 20.0, r"train/depth/1\.npy: negative depth"),
    "NaN depth": ("depth", lambda a: np.where(a > 5, np.nan, a).astype(np.float32), r"train/depth/1\.npy: holds NaN"),
    "normals not unit": ("normal", lambda a: a * 3.0, r"train/normal/1\.npy: normal components reach"),
}


@pytest.mark.parametrize("corruption", list(VALUE_CORRUPTIONS))
def test_bad_values_raise_when_the_sample_is_read(nyuv2_root: Path, corruption: str) -> None:
    field, change, message = VALUE_CORRUPTIONS[corruption]
    path = nyuv2_root / "train" / field / "1.npy"
    np.save(path, change(np.load(path)))
    split = NYUv2(NYUv2.Config(), nyuv2_root).split("train")
    split[0]  # other samples stay readable
    with pytest.raises(DataError, match=message):
        split[1]


def test_test_split_at_another_resolution_than_train(tmp_path: Path) -> None:
    root = write_nyuv2(tmp_path / "a", size=(32, 64))
    write_nyuv2(tmp_path / "b", size=(64, 128))
    _remove_tree(root / "val")
    (tmp_path / "b" / "val").rename(root / "val")
    with pytest.raises(DataError, match=r"nyuv2: .*val holds 64x128 images but .*train holds 32x64"):
        NYUv2(NYUv2.Config(), root).split("test")
    image, _ = NYUv2(NYUv2.Config(resolution=[32, 64]), root).split("test")[0]
    assert image.shape == (3, 32, 64)
