"""Rep-MTL for mtlx: representation-level task saliency regularisation (ICCV 2025)."""

from .config import RepMTLConfig
from .losses import csa_loss, tsr_loss
from .strategy import RepMTL

__version__ = "0.1.0"

__all__ = ["RepMTL", "RepMTLConfig", "__version__", "csa_loss", "tsr_loss"]
