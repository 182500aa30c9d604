"""Name -> component registries, one per kind (timm's registry, with owners).

Names are kebab-case. A lookup of an unknown name suggests close matches; a
name registered by two plugins is reported with both distributions; a name
whose plugin failed to load (a component it declares, or the plugin's own
name) raises that plugin's error.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs

from .errors import PluginError, PluginLoadError, UnknownComponentError, did_you_mean
from .interfaces import Backbone, Dataset, MTOStrategy, MultiTaskModel, TaskHead

__all__ = ["Entry", "Registries", "Registry"]

T = TypeVar("T")
_NAME = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")


@attrs.frozen
class Entry(Generic[T]):
    """A registered component: its name, the class and who registered it."""

    name: str
    obj: T
    owner: str  # "distribution==version (entry point)" or "<local>"

    @property
    def summary(self) -> str:
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Registry(Generic[T]):
    """Components of one kind, keyed by name."""

    def __init__(self, kind: str, base: type, broken: dict[str, PluginLoadError], owner: str = "<local>"):
        self.kind = kind
        self.base = base
        self.owner = owner  # who registers when ``register`` is not told
        self._entries: dict[str, Entry[T]] = {}
        self._conflicts: dict[str, list[str]] = {}
        self._broken = broken
        #: component name -> the error of the plugin that declares it and failed
        self.unavailable: dict[str, PluginLoadError] = {}

    def register(self, name: str, obj: T, *, owner: str | None = None) -> T:
        """Register ``obj`` (a class implementing ``base``, with an attrs ``Config``) as ``name``."""
        owner = owner or self.owner
        where = f"{self.kind} {name!r} from {owner}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"{where}: names must be kebab-case (lowercase letters, digits, '-'), got {name!r}")
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise PluginError(f"{where}: expected a subclass of {self.base.__name__}, got {obj!r}")
        config_cls = getattr(obj, "Config", None)
        if config_cls is None or not attrs.has(config_cls):
            raise PluginError(f"{where}: {obj.__name__}.Config must be an attrs class of its options")
        if name in self._entries:
            first = self._entries[name].owner
            self._conflicts.setdefault(name, [first]).append(owner)
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {first} and by {owner}; "
                "uninstall one of them or block one with --no-plugin"
            )
        self._entries[name] = Entry(name, obj, owner)
        return obj

    def entry(self, name: str) -> Entry[T]:
        if name in self._conflicts:
            owners = " and ".join(self._conflicts[name])
            raise PluginError(f"{self.kind} {name!r} is registered by more than one plugin: {owners}")
        if name in self._entries:
            return self._entries[name]
        error = self.unavailable.get(name) or self._broken.get(name)
        if error is not None:
            raise PluginError(f"{self.kind} {name!r} is unavailable: {error}") from error.cause
        hint = did_you_mean(name, self._entries)
        known = ", ".join(self.list()) or "none installed"
        raise UnknownComponentError(f"no {self.kind} {name!r}{hint} (available: {known})") from None

    def get(self, name: str) -> T:
        """The component registered as ``name``."""
        return self.entry(name).obj

    def list(self, pattern: str = "*", exclude: tuple[str, ...] = ()) -> list[str]:
        """Names matching the fnmatch ``pattern`` and none of ``exclude``, naturally sorted."""
        names = [
            n for n in self._entries if fnmatch.fnmatch(n, pattern) and not any(fnmatch.fnmatch(n, e) for e in exclude)
        ]
        return sorted(names, key=_natural_key)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.list()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())


@attrs.define
class Registries:
    """One :class:`Registry` per component kind, plus the plugins that failed to load.

    ``owner`` is recorded for what is registered without one: a plugin's scratch registries carry its name.
    """

    broken: dict[str, PluginLoadError] = attrs.field(factory=dict)
    owner: str = "<local>"
    strategies: Registry[type[MTOStrategy]] = attrs.field(init=False)
    datasets: Registry[type[Dataset]] = attrs.field(init=False)
    backbones: Registry[type[Backbone]] = attrs.field(init=False)
    heads: Registry[type[TaskHead]] = attrs.field(init=False)
    archs: Registry[type[MultiTaskModel]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.strategies = Registry("strategy", MTOStrategy, self.broken, self.owner)
        self.datasets = Registry("dataset", Dataset, self.broken, self.owner)
        self.backbones = Registry("backbone", Backbone, self.broken, self.owner)
        self.heads = Registry("head", TaskHead, self.broken, self.owner)
        self.archs = Registry("architecture", MultiTaskModel, self.broken, self.owner)

    @property
    def kinds(self) -> dict[str, Registry[Any]]:
        return {
            "strategies": self.strategies,
            "datasets": self.datasets,
            "archs": self.archs,
            "backbones": self.backbones,
            "heads": self.heads,
        }

    @property
    def by_section(self) -> dict[str, Registry[Any]]:
        """The registry behind each component section of a run config (``strategy``, ``dataset``, ...)."""
        return {"strategy": self.strategies, "dataset": self.datasets, "arch": self.archs,
                "backbone": self.backbones, "head": self.heads}

    def merge(self, other: Registries) -> list[str]:
        """Add every entry of ``other`` (a plugin's scratch registries) unless one of its names is taken.

        Then nothing is added and each taken name is recorded as a conflict (its lookup names both
        owners); the messages, one per name, are returned.
        """
        entries = [(self.kinds[attr], entry) for attr, theirs in other.kinds.items() for entry in theirs.entries()]
        messages = []
        for registry, entry in entries:
            if entry.name in registry:
                try:
                    registry.register(entry.name, entry.obj, owner=entry.owner)
                except PluginError as error:
                    messages.append(str(error))
        if not messages:
            for registry, entry in entries:
                registry.register(entry.name, entry.obj, owner=entry.owner)
        return messages

    def mark_unavailable(self, names: Mapping[str, Iterable[str]], error: PluginLoadError) -> None:
        """Record ``{kind: names}`` of a failed plugin so that their lookup raises ``error``."""
        for attr, kind_names in names.items():
            registry = self.kinds.get(attr)
            if registry is None:
                continue
            for name in kind_names:
                if name not in registry:
                    registry.unavailable.setdefault(name, error)
