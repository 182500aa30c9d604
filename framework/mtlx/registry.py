"""Name -> component registries, one per kind (timm's registry, with owners).

Names are kebab-case. A lookup of an unknown name suggests close matches and
points at the plugins that failed to load (or were declared under another
entry-point group) that may provide it; a name whose plugin failed to load (a
component it declares, or the plugin's own name) raises that plugin's error.

A name that two plugins register stays usable through either owner:
``distribution:name`` (``mtlx-baselines:ew``) picks one, the bare name is
refused with both choices spelled out, and a component that wraps another by
name (Rep-MTL's base) gets the owner its own distribution depends on
(:meth:`Registries.as_seen_by`).
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.metadata
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs

from .config import COMPONENT_SECTIONS
from .errors import PluginError, PluginLoadError, UnknownComponentError, did_you_mean
from .interfaces import Backbone, Dataset, MTOStrategy, MultiTaskModel, TaskHead
from .plugin_options import Section

__all__ = ["Entry", "Owner", "Registries", "Registry", "distribution_of", "normalize_distribution"]

T = TypeVar("T")
_NAME = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")
_OWNER = re.compile(r"^(?P<dist>[^\s=()]+)(?:==(?P<version>\S+))?(?:\s+\((?P<plugin>[^)]*)\))?$")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
LOCAL = "<local>"


def normalize_distribution(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``Third_Pkg`` and ``third-pkg`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


@attrs.frozen
class Owner:
    """Who registered a component: the distribution, its version and the plugin (entry point) in it."""

    dist: str = LOCAL
    version: str = ""
    plugin: str = ""

    @classmethod
    def parse(cls, text: str) -> Owner:
        """``"dist==version (plugin)"`` (what :class:`Owner` prints), ``"dist"`` or ``"<local> (plugin)"``."""
        match = _OWNER.match(text.strip())
        if match is None:
            return cls(dist=text)
        return cls(match["dist"], match["version"] or "", match["plugin"] or "")

    @property
    def qualifier(self) -> str:
        """What goes before ``:`` in a qualified name: the distribution (a local plugin's own name)."""
        return self.plugin if self.dist == LOCAL and self.plugin else normalize_distribution(self.dist)

    def answers_to(self, qualifier: str) -> bool:
        """Whether ``qualifier:name`` means this owner's ``name``: its distribution or its plugin's name."""
        wanted = normalize_distribution(qualifier)
        return wanted in {normalize_distribution(self.dist), normalize_distribution(self.plugin)} - {""}

    def __str__(self) -> str:
        base = f"{self.dist}=={self.version}" if self.version else self.dist
        return f"{base} ({self.plugin})" if self.plugin else base


@attrs.frozen
class Entry(Generic[T]):
    """A registered component: its name, the class and who registered it."""

    name: str
    obj: T
    source: Owner

    @property
    def owner(self) -> str:
        """``"distribution==version (entry point)"`` or ``"<local> (plugin)"``."""
        return str(self.source)

    @property
    def qualified(self) -> str:
        """``distribution:name``: this owner's component even when another plugin registers the name too."""
        return f"{self.source.qualifier}:{self.name}"

    @property
    def summary(self) -> str:
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _joined(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


class Registry(Generic[T]):
    """Components of one kind, keyed by name (a name may have several owners: see the module's docstring)."""

    def __init__(self, kind: str, base: type, registries: Registries):
        self.kind = kind
        self.base = base
        self._registries = registries  # who registers by default, the broken plugins, the preferred owners
        self._entries: dict[str, list[Entry[T]]] = {}
        self._prefer: frozenset[str] = frozenset()
        #: component name -> the error of the plugin that declares it and failed
        self.unavailable: dict[str, PluginLoadError] = {}

    def register(self, name: str, obj: T, *, owner: Owner | str | None = None) -> T:
        """Register ``obj`` (a class implementing ``base``, with an attrs ``Config``) as ``name``."""
        source = Owner.parse(owner) if isinstance(owner, str) else owner or self._registries.owner
        where = f"{self.kind} {name!r} from {source}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"{where}: names must be kebab-case (lowercase letters, digits, '-'), got {name!r}")
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise PluginError(f"{where}: expected a subclass of {self.base.__name__}, got {obj!r}")
        config_cls = getattr(obj, "Config", None)
        if config_cls is None or not attrs.has(config_cls):
            raise PluginError(f"{where}: {obj.__name__}.Config must be an attrs class of its options")
        owners = self._entries.setdefault(name, [])
        if any(entry.source == source for entry in owners):
            raise PluginError(f"{self.kind} {name!r} is registered twice by {source}; register each name once")
        owners.append(Entry(name, obj, source))
        owners.sort(key=lambda e: e.qualified)  # messages and listings in one order, whatever the load order
        return obj

    def entry(self, name: str) -> Entry[T]:
        """The entry ``name`` (or ``distribution:name``) stands for; errors say what to type instead."""
        qualifier, _, bare = name.rpartition(":")
        owners = self._entries.get(bare, [])
        if qualifier:
            chosen = [e for e in owners if e.source.answers_to(qualifier)]
            if len(chosen) == 1:
                return chosen[0]
            if owners:
                choices = _joined([repr(e.qualified) for e in owners], "or")
                raise UnknownComponentError(f"no {self.kind} {name!r}: {bare!r} comes from {choices}")
        elif len(owners) == 1:
            return owners[0]
        elif owners:
            preferred = [e for e in owners if normalize_distribution(e.source.dist) in self._prefer]
            if len(preferred) == 1:
                return preferred[0]
            raise PluginError(
                f"{self.kind} {name!r} is registered by {len(owners)} plugins, {_joined([e.owner for e in owners])}: "
                f"name one of {', '.join(repr(e.qualified) for e in owners)}"
            )
        return self._unknown(name, bare)

    def _unknown(self, name: str, bare: str) -> Any:
        error = self.unavailable.get(bare) or self._registries.broken.get(bare)
        if error is not None:
            raise PluginError(f"{self.kind} {name!r} is unavailable: {error}") from error.cause
        hint = did_you_mean(name, self.list())
        known = ", ".join(self.list()) or "none installed"
        raise UnknownComponentError(f"no {self.kind} {name!r}{hint} (available: {known}){self._registries.suspects()}")

    def get(self, name: str) -> T:
        """The component registered as ``name`` (or ``distribution:name``)."""
        return self.entry(name).obj

    def describe(self, name: str) -> str:
        """``"strategy 'ew' from mtlx-baselines==0.1.0 (baselines)"``: the component ``name`` is, for messages."""
        entry = self.entry(name)
        return f"{self.kind} {entry.name!r} from {entry.owner}"

    def owners(self, name: str) -> list[Entry[T]]:
        """Every entry ``name`` may mean: all owners of a bare name, the one of a qualified name."""
        qualifier, _, bare = name.rpartition(":")
        return [e for e in self._entries.get(bare, []) if not qualifier or e.source.answers_to(qualifier)]

    def listing(self, pattern: str = "*") -> list[tuple[str, Entry[T]]]:
        """``(name to type, entry)`` for names matching the fnmatch ``pattern``, naturally sorted; a name with
        several owners is listed once per owner, qualified."""
        rows = [
            (entry.qualified if len(owners) > 1 else name, entry)
            for name, owners in self._entries.items()
            for entry in owners
            if fnmatch.fnmatch(name, pattern)
        ]
        return sorted(rows, key=lambda row: _natural_key(row[0]))

    def list(self, pattern: str = "*") -> list[str]:
        """Names matching the fnmatch ``pattern``, naturally sorted (see :meth:`listing`)."""
        return [name for name, _ in self.listing(pattern)]

    def entries(self) -> list[Entry[T]]:
        return [entry for _, entry in self.listing()]

    def preferring(self, distributions: Iterable[str]) -> Registry[T]:
        """This registry, its shared names resolved to the one owner among ``distributions`` (a view)."""
        view = copy.copy(self)
        view._prefer = frozenset(map(normalize_distribution, distributions))
        return view

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.owners(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())


def _requirements(dist: str) -> set[str]:
    """The distributions ``dist`` depends on (not its extras'), normalised; none when it is not installed."""
    try:
        requires = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    names = set()
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        if "extra" not in marker and (match := _REQUIREMENT.match(spec.strip())):
            names.add(normalize_distribution(match.group()))
    return names


def distribution_of(cls: type) -> str:
    """``"dist==version"`` of the installed distribution that holds ``cls``'s module, else ``"module <name>"``."""
    top = cls.__module__.partition(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [top])  # editable installs map to none
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return f"{dist.metadata['Name']}=={dist.version}"
    return f"module {cls.__module__}"


@attrs.define
class Registries:
    """One :class:`Registry` per component kind, plus what an unknown name's message points at.

    ``owner`` is recorded for what is registered without one: a plugin's scratch registries carry its name.
    ``broken`` are the plugins that failed to load (by entry-point name), ``catalogued`` those of them whose
    components the catalogue lists (an unknown name is not theirs), ``misplaced`` the entry points declared
    under a group that looks like ``mtlx`` but is not. ``sections`` are the config sections plugins own
    (``mtlx_addoption``, :mod:`mtlx.plugin_options`).
    """

    broken: dict[str, PluginLoadError] = attrs.field(factory=dict)
    owner: Owner = attrs.field(default=Owner(), converter=lambda o: Owner.parse(o) if isinstance(o, str) else o)
    catalogued: set[str] = attrs.field(factory=set)
    misplaced: list[str] = attrs.field(factory=list)
    sections: dict[str, Section] = attrs.field(factory=dict)
    strategies: Registry[type[MTOStrategy]] = attrs.field(init=False)
    datasets: Registry[type[Dataset]] = attrs.field(init=False)
    backbones: Registry[type[Backbone]] = attrs.field(init=False)
    heads: Registry[type[TaskHead]] = attrs.field(init=False)
    archs: Registry[type[MultiTaskModel]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.strategies = Registry("strategy", MTOStrategy, self)
        self.datasets = Registry("dataset", Dataset, self)
        self.backbones = Registry("backbone", Backbone, self)
        self.heads = Registry("head", TaskHead, self)
        self.archs = Registry("architecture", MultiTaskModel, self)

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
        return dict(zip(COMPONENT_SECTIONS, self.kinds.values(), strict=True))  # both in the same order

    def merge(self, other: Registries) -> None:
        """Add every entry of ``other`` (a plugin's scratch registries); a name another plugin has is then shared."""
        for attr, theirs in other.kinds.items():
            for entry in theirs.entries():
                self.kinds[attr].register(entry.name, entry.obj, owner=entry.source)

    def mark_unavailable(self, names: Mapping[str, Iterable[str]], error: PluginLoadError) -> None:
        """Record ``{kind: names}`` of a failed plugin so that their lookup raises ``error``."""
        for attr, kind_names in names.items():
            registry = self.kinds.get(attr)
            if registry is None:
                continue
            for name in kind_names:
                if name not in registry:
                    registry.unavailable.setdefault(name, error)

    def suspects(self) -> str:
        """``"; a plugin that failed to load may provide it: ..."``: what an unknown name's message adds."""
        parts = []
        broken = [str(error) for name, error in self.broken.items() if name not in self.catalogued]
        if broken:
            which = "a plugin that failed" if len(broken) == 1 else "plugins that failed"
            parts.append(f"; {which} to load may provide it: {'; '.join(broken)}")
        if self.misplaced:
            which = "an entry point" if len(self.misplaced) == 1 else "entry points"
            parts.append(f"; {which} mtlx does not read may provide it: {'; '.join(self.misplaced)} "
                         "(the group must be 'mtlx')")
        return "".join(parts)

    def preferring(self, distributions: Iterable[str]) -> Registries:
        """A view whose lookups resolve a shared name to its one owner among ``distributions``."""
        distributions = list(distributions)
        view = copy.copy(self)
        for attr, registry in self.kinds.items():
            setattr(view, attr, registry.preferring(distributions))
        return view

    def as_seen_by(self, entry: Entry[Any]) -> Registries:
        """The registries as the component ``entry`` should see them: a name it looks up (Rep-MTL's base, ``ew``)
        that several plugins register means the owner its own distribution depends on (mtlx-baselines)."""
        return self.preferring(_requirements(entry.source.dist)) if entry.source.dist != LOCAL else self
