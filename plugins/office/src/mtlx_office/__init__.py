"""mtlx-office: the Office-31 and Office-Home multi-input classification datasets (LibMTL format)."""

from .dataset import Office31, OfficeDataset, OfficeHome

__all__ = ["Office31", "OfficeDataset", "OfficeHome"]
