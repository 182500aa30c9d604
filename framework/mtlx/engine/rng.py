"""Every random generator a run draws from, saved and restored so that a resume is bit-identical."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["load_rng_state", "rng_state"]


def rng_state() -> dict[str, Any]:
    """The torch, CUDA, Python and NumPy generator states, as tensors and plain values (``torch.save``-able)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        # int64, not uint32: torch.save knows uint32 only from torch 2.6 on (the declared floor is lower)
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def load_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
