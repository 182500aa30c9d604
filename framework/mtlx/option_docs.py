"""A component's options as a user reads them: name, type, default, choices and doc, from its ``Config``.

The doc of an option is taken where plugin authors write it: an ``Attributes:``
section of the ``Config`` docstring (``name: text`` or ``a, b: text``, with
indented continuation lines), a ``#:`` comment right above the field, or the
field's ``metadata={"doc": ...}`` (for fields made by a shared helper).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any

import attrs

__all__ = ["OptionDoc", "describe_options"]

_ATTRIBUTE = re.compile(r"^(?P<names>[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*:\s*(?P<text>.*)$")
_FIELD = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*:")


@attrs.frozen
class OptionDoc:
    """One option of a component."""

    name: str
    type: str
    default: str
    doc: str


def _docstring_attributes(cls: type) -> dict[str, str]:
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() in ("Attributes:", "Options:"))
    except StopIteration:
        return {}
    found: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith(" "):
            break  # the next section
        body = line[4:] if line.startswith("    ") else line.strip()
        match = _ATTRIBUTE.match(body) if not body.startswith(" ") else None
        if match:
            names = [n.strip() for n in match["names"].split(",")]
            for name in names:
                found[name] = match["text"].strip()
        elif body.strip() and names:
            for name in names:
                found[name] = f"{found[name]} {body.strip()}"
    return found


def _comment_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    comment: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and comment:
            found[match["name"]] = " ".join(comment)
        comment = []
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
    docs = {**_comment_docs(config_cls), **_docstring_attributes(config_cls)}
    rows = []
    for field in attrs.fields(config_cls):
        kind = field.type.__name__ if type(field.type) is type else str(field.type or "").replace("typing.", "")
        choices = _choices(field.validator)
        if choices is not None:
            kind = " | ".join(str(c) for c in choices)
        doc = (docs.get(field.name) or field.metadata.get("doc", "")).replace("``", "")
        rows.append(OptionDoc(field.name, str(kind or ""), _default(field), doc))
    return rows
