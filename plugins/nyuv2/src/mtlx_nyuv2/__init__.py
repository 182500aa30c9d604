"""NYUv2 for mtlx.

Public modules: :mod:`.dataset` (the ``nyuv2`` dataset) and :mod:`.testing`
(a fake release in the real format). The ``.npy`` release reader and the
dense task conventions come from the mtlx-dense library, shared with
mtlx-cityscapes.
"""

from .dataset import NYUv2

__version__ = "0.1.0"

__all__ = ["NYUv2", "__version__"]
