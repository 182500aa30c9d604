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
from mtlx.registry import Registries, distribution_of

__all__ = ["blame", "label"]


def label(component: object, registries: Registries | None = None) -> str:
    """``"strategy 'ew' from mtlx-baselines==0.1.0 (baselines)"`` for a registered class or an instance of one, a
    plugin's config section by its label, or ``"MyData from my-dist==1.0"`` unregistered.

    Looked up in ``registries``; None: the installed plugins, loaded afresh.
    """
    registries = registries if registries is not None else PluginManager().registries
    cls = component if isinstance(component, type) else type(component)
    for registry in registries.kinds.values():
        for entry in registry.entries():
            if entry.obj is cls:
                return f"{registry.kind} {entry.name!r} from {entry.owner}"
    for section in registries.sections.values():
        if section.config is cls:
            return section.label
    return f"{cls.__name__} from {distribution_of(cls)}"


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
