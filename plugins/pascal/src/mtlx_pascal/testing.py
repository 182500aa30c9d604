"""A tiny PASCAL_MT tree in the exact on-disk format (datasets spec, section 8), for tests and benchmarks.

Six images of 40x48 pixels (times ``scale``): train 2008_000001..04, val
2008_000005..06. What each holds is chosen so that the expected targets can
be written down by hand:

* LabelMap: columns 0-15 'person' (284), 16-31 'wall' (440), 32-47 'sky'
  (360, not NYU-compatible), and a 'tvmonitor' (427) block at rows 30-39,
  columns 0-7 (NYU-compatible by the custom rule);
* normals: one constant colour per LabelMap class;
* semseg (pascal-context): 15 | 0 | 7 by column block with a 255 border;
  2008_000002 also has a VOC12 map (all 9, 255 border), which must win;
* saliency: uniform random grey levels (seed = the image's index);
* human parts: 01 a person with five parts and a car, 02 a car only,
  03 a person without parts, 04 and 05 a person with two parts each,
  06 no object at all; the ``ImageSets/Parts`` caches list their classes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

__all__ = [
    "HEIGHT",
    "NORMAL_COLOURS",
    "TRAIN_IDS",
    "VAL_IDS",
    "WIDTH",
    "label_map",
    "saliency_png",
    "semseg_map",
    "voc_map",
    "write_parts_mat",
    "write_pascal",
]

HEIGHT, WIDTH = 40, 48
TRAIN_IDS = ("2008_000001", "2008_000002", "2008_000003", "2008_000004")
VAL_IDS = ("2008_000005", "2008_000006")
PERSON, CAR = 15, 7

Box = tuple[tuple[int, int], tuple[int, int]]  # (row start, stop), (column start, stop)

#: LabelMap column blocks: (first column, last column + 1, PASCAL-Context id).
BLOCKS = ((0, 16, 284), (16, 32, 440), (32, 48, 360))
TV_BOX: Box = ((30, 40), (0, 8))
#: PNG colour of the normals of each LabelMap class.
NORMAL_COLOURS = {284: (128, 64, 255), 440: (200, 128, 100), 360: (10, 20, 30), 427: (255, 128, 128)}
SEMSEG_BLOCKS = (15, 0, 7)

#: id -> objects (class index, instance box, [(part name, part box)])
OBJECTS: dict[str, list[tuple[int, Box, list[tuple[str, Box]]]]] = {
    "2008_000001": [
        (
            PERSON,
            ((5, 35), (10, 26)),
            [
                ("head", ((5, 13), (14, 22))),
                ("torso", ((13, 25), (12, 24))),
                ("luarm", ((13, 19), (10, 12))),
                ("rhand", ((19, 21), (24, 26))),
                ("llleg", ((25, 35), (14, 18))),
            ],
        ),
        (CAR, ((30, 40), (30, 46)), []),
    ],
    "2008_000002": [(CAR, ((10, 30), (5, 40)), [])],
    "2008_000003": [(PERSON, ((0, 20), (0, 20)), [])],
    "2008_000004": [(PERSON, ((2, 30), (20, 40)), [("hair", ((2, 6), (25, 35))), ("ruleg", ((20, 30), (22, 30)))])],
    "2008_000005": [(PERSON, ((0, 40), (0, 24)), [("neck", ((8, 10), (5, 15))), ("lfoot", ((36, 40), (5, 10)))])],
    "2008_000006": [],
}

def _box(box: Box, scale: int) -> tuple[slice, slice]:
    (r0, r1), (c0, c1) = box
    return slice(r0 * scale, r1 * scale), slice(c0 * scale, c1 * scale)


def _mask(box: Box, scale: int) -> np.ndarray:
    mask = np.zeros((HEIGHT * scale, WIDTH * scale), dtype=np.uint8)
    mask[_box(box, scale)] = 1
    return mask


def write_parts_mat(path: Path, objects: Sequence[tuple[int, np.ndarray, Sequence[tuple[str, np.ndarray]]]]) -> None:
    """A PASCAL-Part annotation: struct ``anno`` (imname, objects), objects (class, class_ind, mask, parts),
    parts (part_name, mask); an object without parts has an empty ``parts`` array."""
    names = {PERSON: "person", CAR: "car"}
    fields = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    object_array = np.zeros((1, len(objects)), dtype=fields)
    for i, (class_ind, mask, parts) in enumerate(objects):
        part_array: np.ndarray = np.zeros((0, 0))
        if parts:
            part_array = np.zeros((1, len(parts)), dtype=[("part_name", "O"), ("mask", "O")])
            for j, (name, part_mask) in enumerate(parts):
                part_array[0, j] = (name, part_mask.astype(np.uint8))
        class_array = np.array([[class_ind]], dtype=np.uint8)
        object_array[0, i] = (names.get(class_ind, "object"), class_array, mask.astype(np.uint8), part_array)
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0] = (path.stem, object_array if objects else np.zeros((0, 0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"anno": anno})


def label_map(scale: int = 1) -> np.ndarray:
    """The PASCAL-Context ``LabelMap`` of every fixture image (uint16)."""
    out = np.zeros((HEIGHT * scale, WIDTH * scale), dtype=np.uint16)
    for start, stop, cls in BLOCKS:
        out[:, start * scale : stop * scale] = cls
    out[_box(TV_BOX, scale)] = 427
    return out


def _bordered(values: np.ndarray) -> np.ndarray:
    values[[0, -1], :] = 255
    values[:, [0, -1]] = 255
    return values


def semseg_map(scale: int = 1) -> np.ndarray:
    """``semseg/pascal-context`` map: 15 | 0 | 7 by column block, 255 border."""
    out = np.zeros((HEIGHT * scale, WIDTH * scale), dtype=np.uint8)
    for (start, stop, _), value in zip(BLOCKS, SEMSEG_BLOCKS, strict=True):
        out[:, start * scale : stop * scale] = value
    return _bordered(out)


def voc_map(scale: int = 1) -> np.ndarray:
    """``semseg/VOC12`` map of 2008_000002: all 9, 255 border."""
    return _bordered(np.full((HEIGHT * scale, WIDTH * scale), 9, dtype=np.uint8))


def normals_png(scale: int = 1) -> np.ndarray:
    labels = label_map(scale)
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    for cls, colour in NORMAL_COLOURS.items():
        out[labels == cls] = colour
    return out


def saliency_png(index: int, scale: int = 1) -> np.ndarray:
    """The ``sal_distill`` grey levels of the image with position ``index`` in TRAIN_IDS + VAL_IDS."""
    return np.random.default_rng(index).integers(0, 256, size=(HEIGHT * scale, WIDTH * scale), dtype=np.uint8)


def write_pascal(root: Path, scale: int = 1) -> Path:
    """Write the fixture tree under ``root`` (images ``40 scale x 48 scale``); returns ``root``."""
    rng = np.random.default_rng(0)
    for split, ids in (("train", TRAIN_IDS), ("val", VAL_IDS)):
        for folder in ("Context", "Parts"):
            (root / "ImageSets" / folder).mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Context" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        cache = {i: [cls for cls, _, _ in OBJECTS[i]] for i in ids}
        (root / "ImageSets" / "Parts" / f"{split}.txt").write_text(json.dumps(cache))
    for folder in (
        "JPEGImages",
        "semseg/pascal-context",
        "semseg/VOC12",
        "normals_distill",
        "sal_distill",
        "pascal-context/trainval",
        "human_parts",
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shape = (HEIGHT * scale, WIDTH * scale)
    for index, image_id in enumerate(TRAIN_IDS + VAL_IDS):
        Image.fromarray(rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8), "RGB").save(
            root / "JPEGImages" / f"{image_id}.jpg"
        )
        Image.fromarray(semseg_map(scale), "L").save(root / "semseg" / "pascal-context" / f"{image_id}.png")
        Image.fromarray(normals_png(scale), "RGB").save(root / "normals_distill" / f"{image_id}.png")
        Image.fromarray(saliency_png(index, scale), "L").save(root / "sal_distill" / f"{image_id}.png")
        scipy.io.savemat(str(root / "pascal-context" / "trainval" / f"{image_id}.mat"), {"LabelMap": label_map(scale)})
        objects = [
            (cls, _mask(box, scale), [(name, _mask(part_box, scale)) for name, part_box in parts])
            for cls, box, parts in OBJECTS[image_id]
        ]
        write_parts_mat(root / "human_parts" / f"{image_id}.mat", objects)
    Image.fromarray(voc_map(scale), "L").save(root / "semseg" / "VOC12" / "2008_000002.png")
    return root
