"""NYUv2 for mtlx, plus the reader of the MTAN ``.npy`` releases that mtlx-cityscapes shares.

Public modules: :mod:`.dataset` (the ``nyuv2`` dataset), :mod:`.release`
(the ``.npy`` release reader, also used by mtlx-cityscapes),
:mod:`.conventions` (tasks, metric conventions, stored baselines) and
:mod:`.testing` (fixture writers). The scale-crop-flip augmentation is the
core's :mod:`mtlx.augment`.
"""

from .dataset import NYUv2

__version__ = "0.1.0"

__all__ = ["NYUv2", "__version__"]
