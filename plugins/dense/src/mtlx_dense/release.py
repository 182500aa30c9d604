"""Reader of the MTAN preprocessed ``.npy`` releases (NYUv2 and Cityscapes).

Layout: ``<split>/<field>/<i>.npy`` for i = 0..N-1, bare integers without
padding, one directory per field (``image``, ``label``, ``depth``, ...).
Images are ``H x W x 3`` floats in [0, 1], labels ``H x W`` floats holding
class ids with -1 = ignore, depth ``H x W x 1`` with 0 = invalid, normals
``H x W x 3`` unit vectors with all-zero = invalid (datasets spec, 1-2).

A split is checked when it is opened: every directory exists, indices are
contiguous and the same in every directory, and every file's header has the
right shape and dtype (headers only, so it is quick even for 15,000 files).
A bad file raises :class:`mtlx.errors.DataError` naming it before any
sample is produced. Values (label ids, image range) are checked as each
sample is read, again naming the file.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.utils.data

from mtlx import DataError

from .augment import RandomScaleCropFlip, resize_fields

__all__ = ["Field", "NpyReleaseSplit", "read_header", "scan_split"]

_INDEX_NAME = re.compile(r"^(0|[1-9][0-9]*)\.npy$")
_DTYPE_KINDS = {"f": "floating point", "i": "signed integer"}


@attrs.frozen(kw_only=True)
class Field:
    """One directory of a release and what each of its files must hold.

    Attributes:
        directory: directory name inside the split (``"label_7"``).
        kind: ``"image"`` or the task kind (``segmentation``, ``depth``, ``normal``).
        channels: size of the trailing channel axis, or None for ``H x W`` arrays.
        dtype_kinds: numpy dtype kinds accepted (``"f"`` floats, ``"i"`` signed ints).
        what: what the file holds, for error messages.
        num_classes: for segmentation, ids must lie in ``{-1, 0..num_classes-1}``.
    """

    directory: str
    kind: str
    channels: int | None
    dtype_kinds: str
    what: str
    num_classes: int | None = None


@functools.lru_cache(maxsize=256)
def _parse_header(text: bytes, encoding: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one header dict; cached, since a split's files share a few headers."""
    header = ast.literal_eval(text.decode(encoding))
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        raise ValueError(f"malformed header {header!r}")
    return tuple(int(n) for n in header["shape"]), np.lib.format.descr_to_dtype(header["descr"])


def read_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an ``.npy`` header; DataError if unreadable or truncated.

    Reads only the header (numpy's own parser compiles every header, which
    makes checking 15,000 files take seconds; identical headers are parsed once here).
    """
    try:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            size_bytes = fh.read(2 if major == 1 else 4)
            length = int.from_bytes(size_bytes, "little")
            text = fh.read(length)
            if len(size_bytes) < (2 if major == 1 else 4) or len(text) < length:
                raise ValueError("the header is cut short")
            shape, dtype = _parse_header(text, "latin1" if major < 3 else "utf8")
            data_start = fh.tell()
            size = os.fstat(fh.fileno()).st_size
    except (OSError, ValueError, SyntaxError, TypeError) as error:
        raise DataError(f"{path}: not a readable .npy file ({error}); re-extract it from the release") from None
    if dtype.hasobject:
        raise DataError(f"{path}: holds Python objects (dtype {dtype}), not a numeric array; re-extract it")
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size - data_start < needed:
        raise DataError(
            f"{path}: truncated: the header announces {shape} {dtype} ({needed} bytes) but only "
            f"{size - data_start} bytes follow; re-extract it"
        )
    return shape, dtype


def _indices(directory: Path) -> list[int]:
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.endswith(".npy"):
                continue
            if not _INDEX_NAME.match(entry.name):
                raise DataError(
                    f"{directory / entry.name}: unexpected file name; the release names files by their bare "
                    "index (0.npy, 1.npy, ... without zero padding)"
                )
            found.append(int(entry.name[:-4]))
    return sorted(found)


def scan_split(split_dir: Path, fields: Mapping[str, Field], what: str) -> tuple[int, tuple[int, int]]:
    """Check one split of a release on disk and return its size and resolution ``(count, (H, W))``.

    ``fields`` maps sample keys to directories; the first is the image, whose
    indices every other directory must match. ``what`` prefixes messages.
    """
    if not split_dir.is_dir():
        raise DataError(f"{what}: split directory {split_dir} does not exist")
    image_key, image_field = next(iter(fields.items()))
    indices: dict[str, list[int]] = {}
    for key, field in fields.items():
        directory = split_dir / field.directory
        if not directory.is_dir():
            present = ", ".join(sorted(p.name for p in split_dir.iterdir() if p.is_dir())) or "nothing"
            raise DataError(
                f"{what}: directory {directory} is missing; it should hold {field.what} as 0.npy, 1.npy, ... "
                f"({split_dir} has: {present})"
            )
        indices[key] = _indices(directory)
    image_dir = split_dir / image_field.directory
    reference = indices[image_key]
    if not reference:
        raise DataError(f"{what}: empty split: {image_dir} holds no .npy files")
    gaps = sorted(set(range(reference[-1] + 1)) - set(reference))
    if gaps:
        raise DataError(
            f"{what}: {image_dir / f'{gaps[0]}.npy'} is missing: indices must be contiguous 0..N-1, "
            f"but {image_dir} has {len(reference)} files up to {reference[-1]}.npy"
        )
    for key, field in fields.items():
        directory = split_dir / field.directory
        missing = sorted(set(reference) - set(indices[key]))
        if missing:
            raise DataError(
                f"{what}: {directory / f'{missing[0]}.npy'} is missing "
                f"({image_dir / f'{missing[0]}.npy'} has no {field.directory} file; {len(missing)} missing in all)"
            )
        extra = sorted(set(indices[key]) - set(reference))
        if extra:
            raise DataError(
                f"{what}: {directory / f'{extra[0]}.npy'} has no image {image_dir / f'{extra[0]}.npy'} "
                f"({len(extra)} unmatched file(s) in {directory})"
            )
    shape, _ = read_header(image_dir / "0.npy")
    if len(shape) != 3 or shape[2] != 3:
        raise DataError(f"{what}: {image_dir / '0.npy'} has shape {shape}; expected H x W x 3 ({image_field.what})")
    height, width = shape[:2]
    for index in reference:
        for field in fields.values():
            _check_header(split_dir / field.directory / f"{index}.npy", field, height, width)
    return len(reference), (height, width)


def _check_header(path: Path, field: Field, height: int, width: int) -> None:
    shape, dtype = read_header(path)
    expected = (height, width) if field.channels is None else (height, width, field.channels)
    if shape != expected:
        raise DataError(
            f"{path}: shape {shape}, expected {expected} ({field.what}; the split's images are {height}x{width})"
        )
    if dtype.kind not in field.dtype_kinds:
        kinds = " or ".join(_DTYPE_KINDS[k] for k in field.dtype_kinds)
        raise DataError(f"{path}: dtype {dtype}, expected {kinds} ({field.what})")


def _check_values(path: Path, array: np.ndarray, field: Field) -> None:
    """Value checks that headers cannot do; cheap vectorised reductions."""
    if field.kind == "segmentation":
        ids = array
        if ids.dtype.kind == "f" and not np.array_equal(ids, np.round(ids)):
            raise DataError(f"{path}: label holds non-integer values; expected class ids ({field.what})")
        low, high = ids.min(), ids.max()
        if low < -1 or high >= (field.num_classes or 0):
            raise DataError(
                f"{path}: label ids range over [{low:g}, {high:g}], expected -1 (ignore) or 0..{field.num_classes - 1}"
            )
        return
    if not np.isfinite(array).all():
        raise DataError(f"{path}: holds NaN or Inf values ({field.what})")
    if field.kind == "image" and (array.min() < 0.0 or array.max() > 1.0 + 1e-6):
        raise DataError(
            f"{path}: image values range over [{array.min():g}, {array.max():g}], expected [0, 1] "
            "(pixels / 255, as in the release)"
        )
    if field.kind == "depth" and array.min() < 0.0:
        raise DataError(f"{path}: negative depth {array.min():g}; depth is >= 0 with 0 marking invalid pixels")
    if field.kind == "normal" and np.abs(array).max() > 1.0 + 1e-3:
        raise DataError(f"{path}: normal components reach {np.abs(array).max():g}; expected unit vectors in [-1, 1]")


def _to_tensor(array: np.ndarray, field: Field) -> torch.Tensor:
    if field.kind == "segmentation":
        return torch.from_numpy(array.astype(np.int64))
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32))


class NpyReleaseSplit(torch.utils.data.Dataset):
    """One split of a ``.npy`` release as a map-style torch dataset.

    Samples are ``(image [3,H,W] float32, {task: target})`` with segmentation
    ``[H,W]`` int64 (-1 = ignore), depth ``[1,H,W]`` and normals ``[3,H,W]``
    float32. With ``augment``, every sample gets its own scale-crop-flip
    draw (:class:`~.augment.RandomScaleCropFlip`), whose generator
    state is this dataset's ``state_dict``, so a StatefulDataLoader resumes it exactly.
    """

    def __init__(
        self,
        split_dir: Path,
        fields: Mapping[str, Field],
        *,
        what: str,
        size: tuple[int, int] | None = None,
        augment: bool = False,
        scales: tuple[float, ...] = (1.0, 1.2, 1.5),
    ):
        self.split_dir = Path(split_dir)
        self.fields = dict(fields)
        self.what = what
        self.count, self.native_size = scan_split(self.split_dir, self.fields, what)
        self.size = tuple(size) if size is not None else self.native_size
        self.kinds = {key: field.kind for key, field in self.fields.items()}
        self.augment = RandomScaleCropFlip(scales) if augment else None

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> dict[str, torch.Tensor]:
        """Every field of sample ``index`` as tensors at the native resolution, values checked."""
        out = {}
        for key, field in self.fields.items():
            path = self.split_dir / field.directory / f"{index}.npy"
            try:
                array = np.load(path)
            except (OSError, ValueError) as error:
                raise DataError(f"{self.what}: cannot read {path}: {error}") from None
            _check_values(path, array, field)
            out[key] = _to_tensor(array, field)
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not 0 <= index < self.count:
            raise IndexError(f"{self.what}: index {index} out of range for {self.count} samples")
        sample = resize_fields(self.load(index), self.kinds, self.size)
        if self.augment is not None:
            sample = self.augment(sample, self.kinds)
        image_key = next(iter(self.fields))
        image = sample.pop(image_key)
        return image, sample

    def state_dict(self) -> dict[str, Any]:
        return self.augment.state_dict() if self.augment is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.augment is not None:
            self.augment.load_state_dict(state)
