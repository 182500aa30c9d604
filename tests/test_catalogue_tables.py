"""The catalogue tables hold one row per registered strategy and architecture, so none can go stale silently.

A table follows a ``<!-- catalogue: KIND -->`` line (KIND a registry: ``strategies``, ``archs``); a row's name
is the first ``code`` span of its first cell. The registered names come from the first-party plugins
themselves: every entry point of registry.toml, loaded into a plugin manager, as ``mtlx list`` loads them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from collections import Counter
from pathlib import Path

import pytest

from mtlx.catalog import load_catalog
from mtlx.hooks import PluginManager

ROOT = Path(__file__).resolve().parents[1]

#: README (relative to the repository root) -> the registries whose catalogue table it holds
TABLES = {
    "plugins/baselines/README.md": ("strategies",),
    "plugins/archs/README.md": ("archs",),
    "README.md": ("strategies", "archs"),
}
MARKER = re.compile(r"<!-- catalogue: (\w+) -->")
CASES = [(path, kind) for path, kinds in TABLES.items() for kind in kinds]
SINGULAR = {"strategies": "strategy", "archs": "architecture"}


@functools.cache
def _first_party() -> PluginManager:
    """A plugin manager with every first-party plugin of registry.toml registered, and nothing else."""
    manager = PluginManager(autoload=False)
    for entry in load_catalog():
        try:
            distribution = importlib.metadata.distribution(entry.distribution)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{entry.distribution} is not installed: the tables name every first-party component")
        (point,) = [ep for ep in distribution.entry_points if ep.group == "mtlx" and ep.name == entry.entry_point]
        manager.register_object(point.load(), entry.entry_point)
    assert manager.broken == {}
    return manager


def registered(kind: str) -> set[str]:
    return set(_first_party().registries.kinds[kind].list())


def _cells(line: str) -> list[str]:
    """The cells of a table row, split on ``|`` outside code spans and not escaped."""
    cells, current, in_code, previous = [], "", False, ""
    for char in line.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code and previous != "\\":
            cells.append(current.strip())
            current = ""
        else:
            current += char
        previous = char
    return [*cells, current.strip()]


def table(text: str, kind: str) -> tuple[int, list[str]]:
    """The line number of ``text``'s catalogue line of ``kind`` and the table's lines after it."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if (m := MARKER.fullmatch(line.strip())) and m.group(1) == kind]
    if len(starts) != 1:
        raise ValueError(f"{len(starts)} '<!-- catalogue: {kind} -->' lines, expected 1")
    rows: list[str] = []
    for line in lines[starts[0] + 1:]:
        if not line.strip() and not rows:
            continue
        if not line.startswith("|"):
            break
        rows.append(line)
    return starts[0] + 1, rows


def problems(text: str, kind: str, names: set[str]) -> list[str]:
    """What is wrong with ``text``'s catalogue table of ``kind`` against the registered ``names`` (empty: nothing)."""
    try:
        marker, rows = table(text, kind)
    except ValueError as error:
        return [str(error)]
    if len(rows) < 3:
        return [f"line {marker}: no table with rows after the catalogue line"]
    header, body = _cells(rows[0]), rows[2:]
    found: Counter[str] = Counter()
    wrong: list[str] = []
    for number, line in enumerate(body, start=marker + 3):
        cells = _cells(line)
        name = re.search(r"`([^`]+)`", cells[0])
        if len(cells) != len(header):
            wrong.append(f"line {number}: {len(cells)} cells, the header has {len(header)}")
        if name is None:
            wrong.append(f"line {number}: the first cell names no `component`")
        else:
            found[name.group(1)] += 1
    wrong += [f"no row for registered {SINGULAR[kind]} {n!r}" for n in sorted(names - set(found))]
    wrong += [f"{count} rows for {n!r}" for n, count in sorted(found.items()) if count > 1]
    wrong += [f"a row for {n!r}, which no first-party plugin registers" for n in sorted(set(found) - names)]
    return wrong


@pytest.mark.parametrize(("path", "kind"), CASES)
def test_the_table_has_one_row_per_registered_component(path, kind):
    found = problems((ROOT / path).read_text(), kind, registered(kind))
    assert not found, f"{path}, catalogue of {kind}:\n" + "\n".join(found)


@pytest.mark.parametrize(("path", "kind"), CASES)
def test_a_removed_a_doubled_or_a_foreign_row_is_named(path, kind):
    """Edited copies of the real table: each edit gives one line naming the component."""
    names = registered(kind)
    text = (ROOT / path).read_text()
    name = min(names)
    (row,) = [line for line in table(text, kind)[1] if line.startswith(f"| `{name}`")]
    assert problems(text.replace(row + "\n", ""), kind, names) == [f"no row for registered {SINGULAR[kind]} {name!r}"]
    assert problems(text.replace(row, f"{row}\n{row}"), kind, names) == [f"2 rows for {name!r}"]
    foreign = row.replace(f"`{name}`", "`not-registered`", 1)
    assert problems(text.replace(row, f"{row}\n{foreign}"), kind, names) == [
        "a row for 'not-registered', which no first-party plugin registers"]


def test_a_table_without_its_marker_is_refused():
    assert problems("| name |\n|---|\n| `ew` |\n", "strategies", {"ew"}) == [
        "0 '<!-- catalogue: strategies -->' lines, expected 1"]
