"""A tiny fake NYUv2 release in the exact on-disk format (datasets spec, section 8), for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtlx_dense import write_npy_release

__all__ = ["nyuv2_sample", "write_nyuv2"]


def _unit_normals(rng: np.random.Generator, height: int, width: int, invalid: float = 0.05) -> np.ndarray:
    """``H x W x 3`` float32 unit vectors with about ``invalid`` of the pixels all-zero."""
    normal = rng.normal(size=(height, width, 3))
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal[rng.random((height, width)) < invalid] = 0.0
    return normal.astype(np.float32)


def nyuv2_sample(rng: np.random.Generator, height: int, width: int) -> dict[str, np.ndarray]:
    """One NYUv2 sample as the release stores it (float64 image and label, float32 depth and normals)."""
    label = rng.integers(0, 13, size=(height, width)).astype(np.float64)
    label[rng.random((height, width)) < 0.05] = -1.0
    depth = rng.uniform(0.5, 10.0, size=(height, width, 1)).astype(np.float32)
    depth[rng.random((height, width, 1)) < 0.05] = 0.0
    return {
        "image": rng.uniform(0.0, 1.0, size=(height, width, 3)),
        "label": label,
        "depth": depth,
        "normal": _unit_normals(rng, height, width),
    }


def write_nyuv2(
    root: Path, *, n_train: int = 4, n_val: int = 2, size: tuple[int, int] = (32, 64), seed: int = 0
) -> Path:
    """A fake NYUv2 release under ``root`` (``train/`` and ``val/``); returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        samples = [nyuv2_sample(rng, *size) for _ in range(count)]
        write_npy_release(
            root, split, {key: [s[key] for s in samples] for key in ("image", "label", "depth", "normal")}
        )
    return Path(root)
