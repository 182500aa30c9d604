"""Cityscapes and GTA5 -> Cityscapes for mtlx.

The ``.npy`` release reader, the dense task conventions and the scale-crop-flip
augmentation come from the mtlx-dense library (shared with mtlx-nyuv2).
"""

from .cityscapes import Cityscapes
from .gta5 import GTA5

__version__ = "0.1.0"

__all__ = ["GTA5", "Cityscapes", "__version__"]
