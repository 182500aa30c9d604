"""What the dense scene datasets share (NYUv2, Cityscapes, GTA5): in the core so no plugin imports another's.

:mod:`.release` reads an MTAN ``.npy`` release (checked on open),
:mod:`.conventions` builds the dense tasks (segmentation, depth, normals) with
their metric conventions and stored baselines, and :mod:`.base` is the dataset
base class that locates a release and opens its splits. Fixture writers for
the format are in :mod:`mtlx.testing.dense`.
"""
