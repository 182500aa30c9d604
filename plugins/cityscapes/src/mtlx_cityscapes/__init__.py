"""Cityscapes and GTA5 -> Cityscapes for mtlx.

The ``.npy`` release reader and the dense task conventions are the core's
:mod:`mtlx.dense` (shared with mtlx-nyuv2); the scale-crop-flip augmentation
is the core's :mod:`mtlx.augment`.
"""

from .cityscapes import Cityscapes
from .gta5 import GTA5

__version__ = "0.1.0"

__all__ = ["GTA5", "Cityscapes", "__version__"]
