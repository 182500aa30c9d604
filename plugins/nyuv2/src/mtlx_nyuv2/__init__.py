"""NYUv2 for mtlx, plus the reader of the MTAN ``.npy`` releases and the dense augmentation it shares.

Public modules: :mod:`.dataset` (the ``nyuv2`` dataset), :mod:`.release`
(the ``.npy`` release reader, also used by mtlx-cityscapes),
:mod:`.augment` (vectorised scale-crop-flip), :mod:`.conventions` (tasks,
metric conventions, stored baselines) and :mod:`.testing` (fixture writers).
"""

from .dataset import NYUv2

__version__ = "0.1.0"

__all__ = ["NYUv2", "__version__"]
