"""Cityscapes label ids -> the 19 train ids, the mapping GTA5's labels need (datasets spec, section 4).

GTA5 ('Playing for Data') labels store Cityscapes *label ids* (0-33); the
19-class benchmark uses *train ids* 0-18 and ignores everything else (255).
"""

from __future__ import annotations

import numpy as np

__all__ = ["IGNORE_TRAIN_ID", "LABEL_TO_TRAIN_ID", "TRAIN_CLASSES", "to_train_ids"]

#: The 19 evaluated classes, in train-id order.
TRAIN_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

#: label id -> train id for the 19 classes; every other id is ignored.
LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

IGNORE_TRAIN_ID = 255

_LUT = np.full(256, IGNORE_TRAIN_ID, dtype=np.uint8)
_LUT[list(LABEL_TO_TRAIN_ID)] = list(LABEL_TO_TRAIN_ID.values())


def to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a uint8 array of label ids to train ids (255 for unmapped ids) with one table lookup."""
    if label_ids.dtype != np.uint8:
        raise TypeError(f"label ids must be uint8 (as decoded from the PNG), got {label_ids.dtype}")
    return _LUT[label_ids]
