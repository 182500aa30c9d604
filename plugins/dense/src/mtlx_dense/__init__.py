"""mtlx-dense: what the dense scene datasets share (NYUv2, Cityscapes, GTA5, PASCAL-Context), as a library.

It registers no component: dataset plugins declare ``mtlx-dense`` as a dependency and import what they need
from this package's top level (``from mtlx_dense import ...``; the submodules are internal):

* the MTAN ``.npy`` release reader (checked on open) and the dataset base class that locates a release and
  opens its splits;
* the dense tasks (segmentation, depth, normals) with their metric conventions and stored baselines;
* the vectorised, resumable scale-crop-flip augmentation;
* the dense losses and meters (mIoU, pixel accuracy, depth and angular errors);
* :func:`write_npy_release`, the fixture writer of the release format for tests and benchmarks.
"""

from .augment import FIELD_KINDS, RandomScaleCropFlip, ScaleCropFlip, resize_fields
from .conventions import (
    IGNORE_LABEL,
    PAPER_TRAINING,
    DenseOptions,
    SceneOptions,
    StoredBaseline,
    dense_recommended,
    depth_task,
    normal_task,
    segmentation_task,
)
from .dataset import NpyReleaseDataset
from .losses import depth_l1_loss, normal_cosine_loss
from .metrics import DepthMeter, NormalMeter, SegmentationMeter
from .release import Field, NpyReleaseSplit
from .testing import write_npy_release

__all__ = [
    "FIELD_KINDS",
    "IGNORE_LABEL",
    "PAPER_TRAINING",
    "DenseOptions",
    "DepthMeter",
    "Field",
    "NormalMeter",
    "NpyReleaseDataset",
    "NpyReleaseSplit",
    "RandomScaleCropFlip",
    "ScaleCropFlip",
    "SceneOptions",
    "SegmentationMeter",
    "StoredBaseline",
    "dense_recommended",
    "depth_l1_loss",
    "depth_task",
    "normal_cosine_loss",
    "normal_task",
    "resize_fields",
    "segmentation_task",
    "write_npy_release",
]
