"""SIGINT/SIGTERM handled for the length of a block: the one way the runner, the launcher and executors do it."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["on_stop_signals"]


@contextlib.contextmanager
def on_stop_signals(react: Callable[[list[str]], None]) -> Iterator[list[str]]:
    """While the block runs, SIGINT and SIGTERM append their name to the yielded list, then call ``react`` with it.

    ``react`` sees every signal so far (a second Ctrl-C can escalate) and may raise to interrupt the block.
    The previous handlers come back afterwards. Outside the main thread, where Python delivers no signals,
    nothing is installed and the list stays empty.
    """
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        react(received)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
