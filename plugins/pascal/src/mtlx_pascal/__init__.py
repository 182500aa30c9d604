"""mtlx-pascal: the PASCAL-Context multi-task benchmark (ASTMT's PASCAL_MT) as the mtlx dataset ``pascal``."""

from .dataset import PascalContext

__all__ = ["PascalContext"]
