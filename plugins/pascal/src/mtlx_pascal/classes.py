"""Class tables of the PASCAL-Context multi-task benchmark (the ``db_info`` of ASTMT, rewritten).

* semseg: background + the 20 VOC classes (the PNG values 0..20, 255 = void);
* human parts: PASCAL-Part person parts grouped into 6 parts (ASTMT's
  ``num_human_parts=6`` table) + background;
* normals: the PASCAL-Context classes (``LabelMap`` ids) on which the
  distilled normals are kept, read from ``tables/*.json``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

__all__ = [
    "PART_CLASSES",
    "PART_GROUPS",
    "PERSON_CLASS",
    "VOC_CLASSES",
    "context_class_names",
    "normals_valid_ids",
]

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

#: The 7 classes of the human-parts task (label value = index).
PART_CLASSES: tuple[str, ...] = ("background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg")

#: PASCAL-Part ``class_ind`` of a person (its VOC index).
PERSON_CLASS = VOC_CLASSES.index("person")

_PART_MEMBERS: dict[int, tuple[str, ...]] = {
    1: ("hair", "head", "lear", "lebrow", "leye", "mouth", "nose", "rear", "rebrow", "reye"),
    2: ("neck", "torso"),
    3: ("luarm", "ruarm"),
    4: ("lhand", "llarm", "rhand", "rlarm"),
    5: ("luleg", "ruleg"),
    6: ("lfoot", "llleg", "rfoot", "rlleg"),
}

#: PASCAL-Part person part name -> label value of the 6-part task.
PART_GROUPS: dict[str, int] = {name: label for label, names in _PART_MEMBERS.items() for name in names}


def _table(name: str) -> list[str]:
    text = resources.files("mtlx_pascal.tables").joinpath(name).read_text()
    return list(json.loads(text)["names"])


@cache
def context_class_names() -> tuple[str, ...]:
    """The 459 PASCAL-Context class names; ``LabelMap`` value ``i`` is ``names[i - 1]``."""
    return tuple(_table("context_classes.json"))


@cache
def normals_valid_ids() -> tuple[int, ...]:
    """``LabelMap`` ids whose pixels keep their distilled normal (170 classes, sorted)."""
    ids = {name: i + 1 for i, name in enumerate(context_class_names())}
    return tuple(sorted(ids[name] for name in _table("normals_classes.json")))
