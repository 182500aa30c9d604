"""mtlx-qm9: the QM9 multi-task regression benchmark built offline from qm9pack, and the MPNN backbone."""

from .dataset import QM9Dataset
from .mpnn import MPNN

__all__ = ["MPNN", "QM9Dataset"]
