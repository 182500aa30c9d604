"""Cityscapes and GTA5 -> Cityscapes for mtlx.

The ``.npy`` reader and the task conventions come from mtlx-nyuv2 (the
same MTAN release format); the scale-crop-flip augmentation is the core's
:mod:`mtlx.augment`.
"""

from .cityscapes import Cityscapes
from .gta5 import GTA5

__version__ = "0.1.0"

__all__ = ["GTA5", "Cityscapes", "__version__"]
