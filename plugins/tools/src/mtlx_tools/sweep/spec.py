"""A sweep's spec: base settings, grid axes and explicit settings, from a TOML file and/or the command's flags.

The file has the sections of a ``mtlx run --config`` file (``[strategy]``, ``[dataset]``, ``[train]`` ...: the
base, given to every cell) plus ``[sweep]`` (``name``, ``presets``), ``[grid]`` (axes: ``"strategy.rho" =
[0.001, 0.01]``, ``seeds = "0-4"``), ``[[settings]]`` (explicit points, each a table of ``section.key``
values) and ``[executor]``. Flags add to it: ``-s``/``-d``/``--seeds``/``-g`` set axes, ``-o`` base values.
How the axes combine into cells is :mod:`.cells`'s job.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from mtlx.config import COMPONENT_SECTIONS, flatten, parse_override
from mtlx.errors import ConfigError, did_you_mean

__all__ = ["EXECUTOR_KEYS", "SEED_AXIS", "Spec", "load_spec", "parse_axis", "parse_seeds"]

SEED_AXIS = "train.seed"
CONFIG_SECTIONS = (*COMPONENT_SECTIONS, "train")
_SPEC_TABLES = ("sweep", "grid", "settings", "executor")
_SWEEP_KEYS = ("name", "presets")
#: ``[executor]`` keys and their types: which executor (local, slurm), then its options (each also a flag).
_EXECUTOR_TYPES: dict[str, type] = {"name": str, "jobs": int, "threads": int, "partition": str, "gpus": int,
                                    "cpus": int, "mem": str, "time": int, "setup": list}
EXECUTOR_KEYS = tuple(_EXECUTOR_TYPES)


@attrs.frozen(kw_only=True)
class Spec:
    """What to sweep; :meth:`to_dict` is what the manifest stores."""

    name: str
    base: dict[str, Any] = attrs.field(factory=dict)
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    settings: tuple[dict[str, Any], ...] = ({},)
    presets: tuple[str, ...] = ()
    executor: dict[str, Any] = attrs.field(factory=dict)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "presets": list(self.presets), "base": self.base,
                "axes": {key: list(values) for key, values in self.axes}, "settings": list(self.settings),
                "executor": self.executor}

    def with_axis(self, key: str, values: Sequence[Any]) -> Spec:
        """This spec with axis ``key`` set to ``values`` (replacing the spec's own, in its place)."""
        axes = dict(self.axes)
        axes[key] = tuple(values)
        return attrs.evolve(self, axes=tuple(axes.items()))


def load_spec(path: str | Path) -> Spec:
    """Read a spec file; every structural mistake is a :class:`ConfigError` naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"sweep spec {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"sweep spec {path} is not valid TOML: {error}") from None
    where = str(path)
    known = (*CONFIG_SECTIONS, *_SPEC_TABLES)
    for table in data:
        if table not in known:
            raise ConfigError(f"{where}: unknown table [{table}]{did_you_mean(table, known)} "
                              f"(tables: {', '.join(known)})")
    sweep = _table(data, "sweep", where)
    _check_keys(sweep, _SWEEP_KEYS, f"{where} [sweep]")
    executor = _table(data, "executor", where)
    _check_executor(executor, f"{where} [executor]")
    base = flatten({s: data[s] for s in CONFIG_SECTIONS if s in data}, where=where)
    axes = [_axis(key, values, f"{where} [grid]") for key, values in _dotted(_table(data, "grid", where)).items()]
    raw_settings = data.get("settings", [{}])
    if not isinstance(raw_settings, list) or not all(isinstance(s, dict) for s in raw_settings):
        raise ConfigError(f"{where}: settings must be an array of tables ([[settings]])")
    if not raw_settings:
        raise ConfigError(f"{where}: settings = [] leaves no cell to run (empty grid)")
    settings = tuple(_dotted(s) for s in raw_settings)
    presets = sweep.get("presets", [])
    if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
        raise ConfigError(f"{where} [sweep]: presets must be a list of names")
    return Spec(name=str(sweep.get("name", path.stem)), base=base, axes=tuple(_unique_axes(axes, where)),
                settings=settings, presets=tuple(presets), executor=executor, source=str(path))


def _table(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {name} must be a [{name}] table")
    return table


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)} (keys: {', '.join(allowed)})")


def _check_executor(table: Mapping[str, Any], where: str) -> None:
    _check_keys(table, EXECUTOR_KEYS, where)
    for key, value in table.items():
        expected = _EXECUTOR_TYPES[key]
        if not isinstance(value, expected) or isinstance(value, bool) or (key == "name" and value not in
                                                                           ("local", "slurm")):
            wanted = "local or slurm" if key == "name" else {int: "an integer", str: "a string", list: "a list"}[expected]
            raise ConfigError(f"{where}: {key} must be {wanted}, got {value!r}")
        least = 0 if key == "gpus" else 1
        if expected is int and value < least:
            raise ConfigError(f"{where}: {key} must be at least {least}, got {value}")
        if key == "setup" and not all(isinstance(line, str) for line in value):
            raise ConfigError(f"{where}: setup must be a list of shell lines (strings)")


def _dotted(table: Mapping[str, Any]) -> dict[str, Any]:
    """``{"strategy": {"rho": x}}`` and ``{"strategy.rho": x}`` alike -> ``{"strategy.rho": x}``; ``seeds`` kept.

    A table under a dotted key is the value of a table-valued option (``"strategy.weights" = {seg = 1.0}``).
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and "." not in key:
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _axis(key: str, values: Any, where: str) -> tuple[str, tuple[Any, ...]]:
    """One axis, checked: a ``section.key`` (or ``seeds``) and a non-empty list of values."""
    if key == "seeds":
        return SEED_AXIS, tuple(parse_seeds(values, where))
    section, _, option = key.partition(".")
    if section not in CONFIG_SECTIONS or not option:
        raise ConfigError(f"{where}: unknown axis {key!r}: an axis is section.key with a section of "
                          f"{', '.join(CONFIG_SECTIONS)}, or seeds{did_you_mean(section, CONFIG_SECTIONS)}")
    if not isinstance(values, list):
        raise ConfigError(f"{where}: axis {key} must be a list of values, got {values!r}")
    if not values:
        raise ConfigError(f"{where}: axis {key} has no values (empty grid)")
    return key, tuple(values)


def _unique_axes(axes: Iterable[tuple[str, tuple[Any, ...]]], where: str) -> list[tuple[str, tuple[Any, ...]]]:
    seen: dict[str, tuple[Any, ...]] = {}
    for key, values in axes:
        if key in seen:
            raise ConfigError(f"{where}: axis {key} is given twice (seeds is {SEED_AXIS})")
        seen[key] = values
    return list(seen.items())


def parse_seeds(value: Any, where: str = "--seeds") -> list[int]:
    """``"0-4"``, ``"0,2,5"``, ``"0-2,7"`` or a list of ints -> the seeds, in order, each once."""
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        seeds = list(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*", value):
        seeds = []
        for part in value.split(","):
            low, _, high = part.partition("-")
            seeds.extend(range(int(low), int(high or low) + 1))
    else:
        raise ConfigError(f"{where}: seeds must look like 0-4, 0,2,5 or [0, 1, 2], got {value!r}")
    if not seeds:
        raise ConfigError(f"{where}: no seeds (empty grid)")
    duplicated = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicated:
        raise ConfigError(f"{where}: seed {duplicated[0]} is given twice (duplicate cells)")
    return seeds


def parse_axis(text: str) -> tuple[str, tuple[Any, ...]]:
    """``-g strategy.rho=0.001,0.01`` -> ``("strategy.rho", (0.001, 0.01))``; values are TOML literals, else strings.

    The whole right-hand side is tried as a TOML array first, so quoted strings may hold commas
    (``-g 'dataset.tasks="seg,depth","seg"'``).
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"grid axis {text!r} must look like section.key=v1,v2 (e.g. strategy.rho=0.001,0.01)")
    if key == "seeds":
        return _axis(key, raw, "-g seeds")
    try:
        values = tomllib.loads(f"v = [{raw}]")["v"]
    except tomllib.TOMLDecodeError:
        values = [parse_override(f"{key}={piece}")[1] for piece in raw.split(",")] if raw.strip() else []
    return _axis(key, values, f"-g {key}")
