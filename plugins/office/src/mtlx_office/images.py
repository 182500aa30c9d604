"""Image decoding and the LibMTL Office preprocessing, with Pillow and torch only (no torchvision).

``Resize((s, s))`` on a PIL image is Pillow's bilinear resize (what
torchvision does for PIL inputs), then ``ToTensor`` (uint8 HWC -> float
CHW in [0, 1]) and the ImageNet normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mtlx import DataError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "load_image"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def load_image(path: Path, size: int, where: str) -> torch.Tensor:
    """``[3, size, size]`` float32, RGB (grayscale and palette images converted), normalised.

    ``where`` (``list_file:line``) is named in the error for unreadable images.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except FileNotFoundError:
        raise DataError(f"{where}: image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{where}: image {path} cannot be decoded: {error}") from None
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    return (pixels - _MEAN) / _STD
