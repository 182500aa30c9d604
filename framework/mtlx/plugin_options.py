"""Config sections a plugin owns, as a pytest plugin adds its options with ``pytest_addoption``.

How a section is declared, set, checked and read: the ``mtlx_addoption`` hook spec (:mod:`mtlx.hooks.specs`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

from .config import COMPONENT_SECTIONS, RUN_TABLE
from .errors import PluginError

if TYPE_CHECKING:
    from .registry import Owner

__all__ = ["PluginOptions", "Section"]

_SECTION = re.compile(r"^[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*$")
#: Sections the core reads itself: never a plugin's.
RESERVED = frozenset({*COMPONENT_SECTIONS, "train", RUN_TABLE})


@attrs.frozen
class Section:
    """One plugin-owned config section: its name, its options (an attrs class) and who declared it."""

    name: str
    config: type
    owner: Owner

    @property
    def label(self) -> str:
        """``config section [ema] from ema-pkg==0.1.0 (ema)``: how messages name it."""
        return f"config section [{self.name}] from {self.owner}"


class PluginOptions:
    """What ``mtlx_addoption`` receives: :meth:`add` declares a section of the calling plugin.

    ``sections`` is every plugin's (shared): a name has one owner, the first plugin that declares it.
    """

    def __init__(self, owner: Owner, sections: dict[str, Section]):
        self.owner = owner
        self.sections = sections

    def add(self, name: str, config: type) -> None:
        """Declare section ``name`` (lowercase, ``-``/``_`` between words) whose options are the attrs class
        ``config``'s fields."""
        section = Section(name, config, self.owner)
        if not isinstance(name, str) or not _SECTION.match(name):
            raise PluginError(f"{section.label}: a section name is lowercase letters, digits, '-' and '_', "
                              f"got {name!r}")
        if name in RESERVED:
            raise PluginError(f"{section.label}: [{name}] is the core's; choose another name")
        if name in self.sections:
            raise PluginError(f"{section.label}: [{name}] is already declared by {self.sections[name].owner}; "
                              "a section has one owner")
        if not (isinstance(config, type) and attrs.has(config)):
            raise PluginError(f"{section.label}: expected an attrs class of its options, got {config!r}")
        self.sections[name] = section
