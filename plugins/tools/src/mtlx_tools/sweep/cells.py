"""A spec expanded into cells, each resolved and validated exactly as ``mtlx run`` resolves its config.

How the axes combine (the rule the README documents):

- a cell's settings are, later wins: the spec's base < the grid axes' values < its ``[[settings]]`` entry;
- every ``[[settings]]`` entry is one point (none given: one empty point), and each grid axis multiplies
  the points it applies to: ``train.*`` and ``*.name`` axes apply to every point; a component option
  (``strategy.rho``) applies to the points whose component has that option, so ``-s ew,rep-mtl -g
  strategy.rho=0.001,0.01`` gives one ``ew`` cell and two ``rep-mtl`` cells per seed; a point whose
  ``[[settings]]`` entry sets the axis's key itself is not multiplied by it;
- an axis that applies to no point, like a base setting or a ``[[settings]]`` key that a cell's
  component lacks, is an error, as are two cells that resolve to the same config.

A cell's key, its run directory's name, is readable and unique: ``digits-rep-mtl-rho0.01-seed3-1a2b3c4d``,
the values the sweep sets for it plus a hash of its resolved config (every default written out, less
:data:`PLACEMENT_KEYS`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from mtlx.config import RETIRED_KEYS, RunConfig, flatten, resolve_run_config
from mtlx.errors import ConfigError, did_you_mean
from mtlx.registry import Registries

from ..report.runs import NOT_EXPERIMENT
from .spec import SEED_AXIS, Spec

__all__ = ["PLACEMENT_KEYS", "Cell", "differences", "expand", "identity"]

_ABSENT = object()

#: Where and how a cell runs, not what it trains (each may change when ``mtlx run`` resumes): left out of
#: the cell's identity, so moving a sweep to other threads or another data root keeps its runs.
PLACEMENT_KEYS = (NOT_EXPERIMENT - {SEED_AXIS}) | {"train.threads"}
_LABEL_MAX = 80


@attrs.frozen(kw_only=True)
class Cell:
    """One run of the sweep: ``settings`` (what the sweep sets for it, base excluded), ``config`` (flat, resolved)."""

    key: str
    label: str
    settings: dict[str, Any]
    config: dict[str, Any]
    #: the flat config of the same components with no option set: what an option a later mtlx adds trains at
    defaults: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a flat run config trains: all of it but :data:`PLACEMENT_KEYS` (and keys mtlx no longer reads)."""
    return {k: v for k, v in config.items() if k not in PLACEMENT_KEYS and k not in RETIRED_KEYS}


def differences(before: Mapping[str, Any], after: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """``"strategy.rho 0.001 -> 0.01, train.epochs 2 -> 3"``: the keys whose identity differs.

    A key that ``before`` (a run's saved config) lacks is an option added since that run was made: it differs
    only where ``after`` sets it to other than its value in ``defaults``, which is what the run trained with.
    Without ``defaults`` (a cell's job, whose plan has checked this already) such a key never differs.
    """
    a, b = identity(before), identity(after)

    def differs(k: str) -> bool:
        if k not in a and k in b:
            return defaults is not None and defaults.get(k, _ABSENT) != b[k]
        return a.get(k) != b.get(k)

    return ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted({*a, *b}) if differs(k))


def expand(spec: Spec, regs: Registries) -> list[Cell]:
    """The spec's cells in order (settings entries, then axes, the seed varying fastest), each validated
    against ``regs`` (the command line's: ``mtlx --no-plugin NAME sweep`` holds for every cell).

    Raises a :class:`ConfigError` naming the axis or the cell for anything ``mtlx run`` would refuse
    before training (unknown section, key, component or option, a wrong type or value) and for duplicates.
    """
    points = [(dict(entry), frozenset(entry)) for entry in spec.settings]
    for key, values in _ordered(spec.axes):
        grown: list[tuple[dict[str, Any], frozenset[str]]] = []
        applied = False
        for settings, fixed in points:
            if key in fixed or not _applies(key, settings, spec, regs):
                grown.append((settings, fixed))
            else:
                applied = True
                grown.extend(({**settings, key: value}, fixed) for value in values)
        if not applied:
            _unused_axis(key, points, spec, regs)
        points = grown
    shown = _shown_names(key for settings, _ in points for key in settings)
    cells = [_cell(settings, spec, regs, shown) for settings, _ in points]
    _check_duplicates(cells)
    return cells


def _ordered(axes: Iterable[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, tuple[Any, ...]]]:
    """Component names first (the dataset's first: it decides the recommended components), the seed last."""
    def rank(axis: tuple[str, tuple[Any, ...]]) -> int:
        key = axis[0]
        return 0 if key == "dataset.name" else 1 if key.endswith(".name") else 3 if key == SEED_AXIS else 2

    return sorted(axes, key=rank)  # stable: the spec's order within each rank


def _resolve(settings: Mapping[str, Any], spec: Spec, regs: Registries) -> RunConfig:
    try:
        return resolve_run_config([spec.base, settings], spec.presets, regs)
    except ConfigError as error:
        raise ConfigError(f"sweep cell {_where(settings)}: {error}") from None


def _options(section: str, config: RunConfig, regs: Registries) -> tuple[str | None, set[str]]:
    """The chosen component of ``section`` and its option names (none when no component is chosen)."""
    name = getattr(config, section).name
    if name is None:
        return None, set()
    return name, set(attrs.fields_dict(regs.by_section[section].get(name).Config))


def _applies(key: str, settings: Mapping[str, Any], spec: Spec, regs: Registries) -> bool:
    section, _, option = key.partition(".")
    if section == "train" or option == "name":
        return True
    config = _resolve(settings, spec, regs)
    try:
        return option in _options(section, config, regs)[1]
    except ConfigError as error:  # no such component
        raise ConfigError(f"sweep cell {_where(settings)}: {error}") from None


def _unused_axis(key: str, points: list[tuple[dict[str, Any], frozenset[str]]], spec: Spec, regs: Registries) -> None:
    """An axis that multiplied no point: set by every ``[[settings]]`` entry, or an option no component has."""
    section, _, option = key.partition(".")
    if all(key in fixed for _, fixed in points):
        raise ConfigError(f"axis {key}: every [[settings]] entry sets {key} itself, so the axis adds no cell")
    found = [_options(section, _resolve(settings, spec, regs), regs) for settings, _ in points]
    names = sorted({name for name, _ in found if name is not None})
    known = set().union(*(options for _, options in found))
    raise ConfigError(f"axis {key}: no {section} of this sweep ({', '.join(names) or 'none chosen'}) has an "
                      f"option {option!r}{did_you_mean(option, known)}")


def _cell(settings: dict[str, Any], spec: Spec, regs: Registries, shown: Mapping[str, str]) -> Cell:
    config = flatten(_resolve(settings, spec, regs).to_dict())
    parts = [str(config["dataset.name"]), str(config["strategy.name"])]
    parts += [f"{shown[k]}{_text(v)}" for k, v in settings.items() if k not in ("dataset.name", "strategy.name",
                                                                                    SEED_AXIS)]
    parts.append(f"seed{config.get(SEED_AXIS, 0)}")
    label = re.sub(r"[^A-Za-z0-9._+-]+", "_", "-".join(p for p in parts if p))[:_LABEL_MAX]
    digest = hashlib.sha256(_canonical(identity(config)).encode()).hexdigest()[:8]
    return Cell(key=f"{label}-{digest}", label=label, settings=settings, config=config,
                defaults=_defaults(config, regs))


def _defaults(config: Mapping[str, Any], regs: Registries) -> dict[str, Any]:
    """The flat config of ``config``'s components with nothing else set: each option at its default."""
    names = {k: v for k, v in config.items() if k.endswith(".name")}
    return flatten(resolve_run_config([names], (), regs).to_dict())


def _shown_names(keys: Iterable[str]) -> dict[str, str]:
    """How a key appears in labels: ``rho`` for ``strategy.rho``, nothing for ``arch.name`` (the value says it),
    the full key where two sections share an option name (``train.lr`` and ``strategy.lr``)."""
    keys = set(keys)
    options = [k.partition(".")[2] for k in keys]
    return {k: "" if k.endswith(".name") else k if options.count(k.partition(".")[2]) > 1 else k.partition(".")[2]
            for k in keys}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "+".join(map(_text, value))
    return str(value)


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def _where(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items()) or "(the base settings)"


def _check_duplicates(cells: list[Cell]) -> None:
    seen: dict[str, Cell] = {}
    for cell in cells:
        first = seen.setdefault(_canonical(identity(cell.config)), cell)
        if first is not cell:
            raise ConfigError(f"duplicate cells: {_where(first.settings)} and {_where(cell.settings)} resolve to the "
                              f"same config ({cell.key}); drop one")
