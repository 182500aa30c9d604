"""Row labels, as MTL papers write them: the strategy name plus what departs from the defaults ("Rep-MTL (τ = 0.3)").

A row shows option ``k`` when ``k`` differs between the rows it is compared with AND the row's value is not
``k``'s default: what ``mtlx run`` trains when ``k`` is left unset (the component's attrs ``Config``, the core's
:class:`~mtlx.config.TrainConfig`, a plugin section's options, under the dataset's ``recommended``). Where a
component's plugin is not installed its defaults are unknown, and its options are shown wherever they differ
between rows (the labelling without defaults), with one warning line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from mtlx.config import COMPONENT_SECTIONS, DEFAULTS, TrainConfig, build_component_config
from mtlx.errors import ConfigError, PluginError
from mtlx.registry import Registries

from .runs import NOT_EXPERIMENT

__all__ = ["Defaults", "labels"]

#: A default that is not known (plugin not installed, an option its Config lacks, a Config with required options).
UNKNOWN = object()


def _normal(value: Any) -> Any:
    """The value as ``config.toml`` holds it (tuples are TOML arrays, read back as lists)."""
    if isinstance(value, (tuple, list)):
        return [_normal(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items()}
    return value


def _options(config_cls: type, where: str) -> dict[str, Any] | None:
    """Every option of ``config_cls`` at its default, as a run writes it; None when some option has no default."""
    try:
        built = build_component_config(config_cls, {}, where)
    except ConfigError:
        return None
    return {k: _normal(v) for k, v in attrs.asdict(built, recurse=False).items()}


@attrs.define
class Defaults:
    """The default of each option of a run's config, from the installed plugins' registries.

    ``missing`` collects the components whose default was asked for but whose plugin is not installed
    (``strategy 'name'``, ``config section [name]``), for the one warning line.
    """

    registries: Registries
    missing: dict[str, None] = attrs.field(factory=dict)  # ordered set
    _cache: dict[tuple[str, str], dict[str, Any] | None] = attrs.field(factory=dict)

    def _section(self, section: str, name: Any) -> dict[str, Any] | None:
        """The default options of ``section`` (of its component ``name``); None: unknown, and where its plugin is
        not installed, noted as missing."""
        if (section, str(name)) not in self._cache:
            found: dict[str, Any] | None = None
            if section == "train":
                found = _options(TrainConfig, "[train]")
            elif section in COMPONENT_SECTIONS:
                registry = self.registries.by_section[section]
                try:
                    found = _options(registry.get(str(name)).Config, f"{registry.kind} {name!r}")
                except (ConfigError, PluginError):
                    self.missing[f"{section} {name!r}"] = None
            elif section in self.registries.sections:
                found = _options(self.registries.sections[section].config, self.registries.sections[section].label)
            else:
                self.missing[f"config section [{section}]"] = None
            self._cache[section, str(name)] = found
        return self._cache[section, str(name)]

    def _recommended(self, config: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The dataset's ``recommended`` layer (None: unknown, the dataset's plugin noted as missing)."""
        name = config.get("dataset.name")
        try:
            return self.registries.datasets.get(str(name)).recommended
        except (ConfigError, PluginError):
            self.missing[f"dataset {name!r}"] = None
            return None

    def of(self, key: str, config: Mapping[str, Any]) -> Any:
        """The default of ``key`` in a run whose config is ``config``, or :data:`UNKNOWN`. It depends only on the
        key, the dataset and, for a component's option, that component's name."""
        recommended = self._recommended(config)
        if recommended is None:  # what the dataset recommends (train.*, the components) is unknown
            return UNKNOWN
        section, _, option = key.partition(".")
        if section in COMPONENT_SECTIONS and option == "name":
            return {**DEFAULTS, **recommended}.get(key, UNKNOWN)
        name = config.get(f"{section}.name")
        defaults = self._section(section, name)
        # as mtlx run resolves: options recommended for one component do not apply to another
        if section in COMPONENT_SECTIONS and recommended.get(f"{section}.name", name) != name:
            recommended = {}
        if defaults is None or option not in defaults:
            return UNKNOWN
        return _normal(recommended.get(key, defaults[option]))

    def warning(self) -> str | None:
        """One line naming the components whose defaults were needed but unknown; None when there are none."""
        if not self.missing:
            return None
        names = ", ".join(self.missing)
        its = "its plugin is" if len(self.missing) == 1 else "their plugins are"
        return (f"row labels show every option that differs between rows for {names}: {its} not installed, "
                f"so {'its' if len(self.missing) == 1 else 'their'} defaults are unknown")


def _peers_key(key: str, config: Mapping[str, Any]) -> tuple[str, Any] | None:
    """Which rows a key is compared among: a component's own option (``strategy.rho``) only among rows of the
    same component (``strategy.name``); the rest (``train.epochs``, ``arch.name``) among all rows."""
    section, _, option = key.partition(".")
    if option != "name" and f"{section}.name" in config:
        return section, config[f"{section}.name"]
    return None


def labels(configs: Sequence[Mapping[str, Any]], defaults: Defaults) -> list[str]:
    """The label of each row (``configs``: one run's config per row, of one dataset): its strategy, plus
    ``(k=v, ...)`` for every option ``k`` that differs between the rows it is compared with and whose value is not
    ``k``'s default (:meth:`Defaults.of`); where that default is unknown, every such ``k`` the row has.

    Unique: rows of two strategies differ in the name that starts the label. Two rows of one strategy are
    different experiments, so some key ``k`` has different values in them (a missing key reads None); if a
    component's ``name`` is such a key take it (names are compared among all rows), else both rows have the
    same components and so are compared on ``k``: ``k`` differs among the rows it is compared with, for both.
    ``k``'s default is the same for both (:meth:`Defaults.of` depends on ``k``, the dataset and the component's
    name only), and two different values cannot both be that one default: at least one of the rows shows ``k``,
    and where both do, they show different values (up to values that print alike, the string "1" and the number
    1). Where the default is unknown a row shows ``k`` when it has it, and two rows that differ in ``k`` cannot
    both lack it. Either way the two rows show different sets of ``k=v``, so their labels differ.
    Deterministic: keys sorted, and the defaults a function of the plugins of ``defaults``' registries.
    """
    keys = sorted({k for c in configs for k in c if k not in NOT_EXPERIMENT and k != "strategy.name"})
    out = []
    for config in configs:
        shown = []
        for key in keys:
            peers = [c for c in configs if _peers_key(key, c) == _peers_key(key, config)]
            if len({repr(c.get(key)) for c in peers}) < 2:
                continue
            default = defaults.of(key, config)
            if default is UNKNOWN:
                if key in config:
                    shown.append(f"{key}={config[key]}")
            elif repr(_normal(config.get(key))) != repr(default):
                shown.append(f"{key}={config.get(key)}")
        strategy = str(config.get("strategy.name", ""))
        out.append(f"{strategy} ({', '.join(shown)})" if shown else strategy)
    return out
