"""Running a block on a given number of torch intra-op threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """``torch.set_num_threads(count)`` for the block, the previous count restored after it.

    Tests and benchmarks of tiny models run on one thread: on a shared CPU,
    extra intra-op threads only spin-wait, and one-thread timings are stable.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
