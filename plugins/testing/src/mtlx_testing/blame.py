"""Conformance failures in one line: which component, from which distribution, what it did and what was expected.

A check calls a plugin's code under :func:`blame`, so an exception from that
code (a wrong-sized gradient, a split that cannot be read) becomes an
``AssertionError`` that names the component instead of a bare torch error; the
original stays chained for the traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mtlx.hooks import PluginManager
from mtlx.registry import Registries

__all__ = ["blame", "label"]


def label(component: object, registries: Registries | None = None) -> str:
    """``"strategy 'ew' from mtlx-baselines==0.1.0 (baselines)"``, or ``"MyData from my-dist==1.0"`` unregistered.

    Looked up in ``registries``; None: the installed plugins, loaded afresh (no process-wide state to reset).
    """
    return (registries if registries is not None else PluginManager().registries).describe(component)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


@contextmanager
def blame(what: str, call: str, expected: str) -> Iterator[None]:
    """Run plugin code: an exception it raises fails the check as ``"{what}: {call} raised ...; expected: ..."``."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as error:  # whatever the plugin raises is reported the same way
        raise AssertionError(
            f"{what}: {call} raised {type(error).__name__}: {first_line(error)}; expected: {expected}"
        ) from error
