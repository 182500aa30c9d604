"""A component's options as a user reads them: name, type, default, choices and doc, from its ``Config``.

An option is documented in one way: an entry of the ``Attributes:`` section of
the ``Config`` docstring (``name: text``, or ``a, b: text`` for several, with
indented continuation lines), which ``help()`` shows too. Options a ``Config``
inherits are documented in its base's docstring.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import attrs

__all__ = ["OptionDoc", "describe_options"]

_SECTION = re.compile(r"^Attributes:$", re.MULTILINE)
_ENTRY = re.compile(r"^    (?P<names>[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*:\s*(?P<text>.*)$")


@attrs.frozen
class OptionDoc:
    """One option of a component."""

    name: str
    type: str
    default: str
    doc: str


def _attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` entries of ``cls`` and of its bases (a subclass's entry wins)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        section = _SECTION.search(doc)
        names: list[str] = []
        for line in doc[section.end() :].splitlines() if section else ():
            if line.strip() and not line.startswith(" "):
                break  # the next section
            if match := _ENTRY.match(line):
                names = [n.strip() for n in match["names"].split(",")]
                found.update(dict.fromkeys(names, match["text"].strip()))
            elif line.strip():
                for name in names:
                    found[name] = f"{found[name]} {line.strip()}"
    return found


def _choices(validator: Any) -> tuple[Any, ...] | None:
    if validator is None:
        return None
    options = getattr(validator, "options", None)
    if options is not None:
        return tuple(options)
    for inner in getattr(validator, "_validators", ()) or getattr(validator, "validators", ()):
        choices = _choices(inner)
        if choices is not None:
            return choices
    return None


def _default(field: attrs.Attribute) -> str:
    default = field.default
    if default is attrs.NOTHING:
        return "(required)"
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory() if not default.takes_self else "(computed)"
    return repr(default)


def describe_options(config_cls: type) -> list[OptionDoc]:
    """Every field of the attrs class ``config_cls``, in declaration order."""
    docs = _attribute_docs(config_cls)
    rows = []
    for field in attrs.fields(config_cls):
        kind = field.type.__name__ if type(field.type) is type else str(field.type or "").replace("typing.", "")
        if (choices := _choices(field.validator)) is not None:
            kind = " | ".join(str(c) for c in choices)
        doc = docs.get(field.name, "").replace("``", "")
        rows.append(OptionDoc(field.name, str(kind or ""), _default(field), doc))
    return rows
