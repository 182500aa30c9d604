"""Reading and decoding the PASCAL_MT files into per-task label maps (numpy, original resolution).

The rules are those of the ASTMT/MTI-Net loader (datasets spec, section 3):

* semseg PNG: raw values 0..20, 255 = ignore (palette PNGs are read as indices);
* human_parts ``.mat``: the PASCAL-Part struct ``anno`` read *by position*;
  every person (class 15) with parts paints its parts with the 6-part table;
* normals: ``n = 2 v / 255 - 1``, kept only on the NYU-compatible
  ``LabelMap`` classes, 0 elsewhere (0 becomes the 255 ignore value once
  the map is resized, see :mod:`mtlx_pascal.transforms`);
* saliency: ``v / 255 > 0.5``;
* edges: ``|Laplacian(LabelMap)| > 0``, thinned.

Every reader raises :class:`mtlx.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import scipy.io
from PIL import Image
from skimage.morphology import thin

from mtlx.errors import DataError

from .classes import PART_GROUPS, PERSON_CLASS, VOC_CLASSES

__all__ = [
    "PartObject",
    "binarise_saliency",
    "edges_from_label_map",
    "human_parts_label",
    "laplacian",
    "mask_normals",
    "object_classes",
    "read_image",
    "read_label_map",
    "read_normals",
    "read_part_objects",
    "read_saliency",
    "read_semseg",
]

IGNORE = 255


@attrs.frozen
class PartObject:
    """One object of a PASCAL-Part annotation: its class index, instance mask and named part masks."""

    class_index: int
    mask: np.ndarray
    parts: tuple[tuple[str, np.ndarray], ...]


# -- image files --------------------------------------------------------------------


def _open_png(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except OSError as error:
        raise DataError(f"{path} is not a readable image ({error})") from None
    return image


def read_image(path: Path) -> np.ndarray:
    """The RGB image as uint8 ``(H, W, 3)``."""
    return np.asarray(_open_png(path).convert("RGB"))


def read_semseg(path: Path) -> np.ndarray:
    """The semseg map as uint8 ``(H, W)``: values 0..20 or 255 (palette PNGs give their indices)."""
    array = np.asarray(_open_png(path))
    if array.ndim != 2:
        raise DataError(f"{path}: a semseg map must be a single-channel PNG, got shape {array.shape}")
    bad = (array > len(VOC_CLASSES) - 1) & (array != IGNORE)
    if bad.any():
        values = sorted(set(np.unique(array[bad]).tolist()))[:5]
        raise DataError(f"{path}: semseg values must be 0..20 or 255 (ignore), found {values}")
    return array.astype(np.uint8)


def read_normals(path: Path) -> np.ndarray:
    """Distilled normals as float32 ``(H, W, 3)`` in [-1, 1]: ``2 v / 255 - 1``."""
    array = np.asarray(_open_png(path))
    if array.ndim != 3 or array.shape[2] < 3:
        raise DataError(f"{path}: normals must be an RGB PNG, got shape {array.shape}")
    return (2.0 * array[..., :3].astype(np.float32) / 255.0 - 1.0).astype(np.float32)


def read_saliency(path: Path) -> np.ndarray:
    """Binarised distilled saliency, float32 ``(H, W)`` in {0, 1}."""
    image = _open_png(path)
    if image.mode != "L":
        image = image.convert("L")
    return binarise_saliency(np.asarray(image))


# -- .mat files ---------------------------------------------------------------------


def _load_mat(path: Path, what: str) -> dict[str, Any]:
    try:
        return scipy.io.loadmat(str(path))
    except FileNotFoundError:
        raise DataError(f"missing {what} file {path}") from None
    except Exception as error:  # noqa: BLE001 -- scipy raises many types (ValueError, MatReadError...)
        raise DataError(f"{path} is not a readable MATLAB .mat file ({type(error).__name__}: {error})") from None


def read_label_map(path: Path) -> np.ndarray:
    """The PASCAL-Context ``LabelMap`` (459 classes) as int64 ``(H, W)``."""
    content = _load_mat(path, "PASCAL-Context label map")
    if "LabelMap" not in content:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise DataError(f"{path}: malformed PASCAL-Context .mat, no 'LabelMap' variable (found {keys})")
    label_map = np.asarray(content["LabelMap"])
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.number):
        raise DataError(f"{path}: 'LabelMap' must be a 2-D integer array, got {label_map.dtype} {label_map.shape}")
    return label_map.astype(np.int64)


def read_part_objects(path: Path) -> list[PartObject]:
    """The objects of a PASCAL-Part annotation, read by position as the reference loader does.

    ``anno[0][0][1][0]`` is the object list; object fields in order are class
    name, class index, instance mask, parts; a part's fields are name, mask.
    """
    content = _load_mat(path, "human_parts")
    try:
        field = content["anno"][0][0][1]
        parsed = [_part_object(obj) for obj in field[0]] if field.size else []
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise DataError(
            f"{path}: malformed human_parts .mat: expected the PASCAL-Part struct 'anno' with the object list at "
            f"anno[0][0][1][0] and objects (class, class_ind, mask, parts) ({type(error).__name__}: {error})"
        ) from None
    return parsed


def _part_object(obj: Any) -> PartObject:
    class_index = int(np.asarray(obj[1]).reshape(-1)[0])
    mask = np.asarray(obj[2]).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"object mask must be 2-D, got shape {mask.shape}")
    raw_parts = np.asarray(obj[3])
    parts = []
    if raw_parts.size:
        for part in raw_parts.reshape(-1):
            name = str(np.asarray(part[0]).reshape(-1)[0])
            part_mask = np.asarray(part[1]).astype(bool)
            if part_mask.shape != mask.shape:
                raise ValueError(f"part {name!r} mask has shape {part_mask.shape}, object mask {mask.shape}")
            parts.append((name, part_mask))
    return PartObject(class_index=class_index, mask=mask, parts=tuple(parts))


def object_classes(objects: Sequence[PartObject], area_threshold: int = 0) -> list[int]:
    """Class index per object, ``-1`` for objects of area ``<= area_threshold`` (the Parts cache format)."""
    return [obj.class_index if int(obj.mask.sum()) > area_threshold else -1 for obj in objects]


# -- decoding rules (pure) ----------------------------------------------------------


def human_parts_label(objects: Sequence[PartObject], where: Path | str = "human_parts") -> np.ndarray | None:
    """uint8 part map (0 background, 1..6 parts) from every person with parts; None if there is none.

    Later objects and parts overwrite earlier ones, as in the reference loader.
    """
    label: np.ndarray | None = None
    for obj in objects:
        if obj.class_index != PERSON_CLASS or not obj.parts:
            continue
        if label is None:
            label = np.zeros(obj.mask.shape, dtype=np.uint8)
        elif obj.mask.shape != label.shape:
            raise DataError(f"{where}: person masks have different shapes {label.shape} and {obj.mask.shape}")
        for name, mask in obj.parts:
            if name not in PART_GROUPS:
                known = ", ".join(sorted(PART_GROUPS))
                raise DataError(f"{where}: unknown person part {name!r} (known: {known})")
            label[mask] = PART_GROUPS[name]
    return label


def mask_normals(
    normals: np.ndarray, label_map: np.ndarray, valid_ids: Sequence[int], where: Path | str = "normals"
) -> np.ndarray:
    """Zero the normals of every pixel whose ``LabelMap`` class is not NYU-compatible."""
    if normals.shape[:2] != label_map.shape:
        raise DataError(f"{where}: normals are {normals.shape[:2]} but the image's LabelMap is {label_map.shape}")
    keep = np.isin(label_map, np.asarray(valid_ids))
    return np.where(keep[..., None], normals, 0.0).astype(np.float32)


def binarise_saliency(values: np.ndarray) -> np.ndarray:
    """``v / 255 > 0.5`` as float32 {0, 1}."""
    return (values.astype(np.float32) / 255.0 > 0.5).astype(np.float32)


def laplacian(label_map: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian with mirrored borders (OpenCV's ``Laplacian`` with ``ksize=1``)."""
    padded = np.pad(label_map.astype(np.float64), 1, mode="reflect")
    return padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4.0 * padded[1:-1, 1:-1]


def edges_from_label_map(label_map: np.ndarray) -> np.ndarray:
    """Edge map float32 {0, 1}: ``thin(|Laplacian(LabelMap)| > 0)``.

    Note the rule's quirk, kept on purpose: a pixel whose four neighbours'
    labels sum to four times its own (e.g. 4 and 6 around a 5) is no edge.
    """
    return thin(np.abs(laplacian(label_map)) > 0).astype(np.float32)
