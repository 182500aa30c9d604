"""Running a block on a given number of torch intra-op threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """``torch.set_num_threads(count)`` for the block (None: unchanged), the previous count restored after it.

    ``mtlx run --threads`` must not leave the process changed (a user's loop, a test session); tests and
    benchmarks of tiny models run on one thread: on a shared CPU, extra intra-op threads only spin-wait.
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
