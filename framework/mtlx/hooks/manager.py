"""Plugin loading and hook calls: entry points of group ``mtlx``, each on its own.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that fails
to import and skips duplicate names silently; here every entry point is
loaded, registered and validated separately, so one broken plugin is
reported (name, distribution, target, cause) while all others still work.
Entry points declared under a group that looks like ``mtlx`` but is not
(``mtlx.plugins``, ``mtl``) are never loaded, and are reported. Every hook
is called through :meth:`PluginManager.call` (a hook that raises: its docstring).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import pluggy

from ..catalog import load_catalog
from ..errors import PluginError, PluginLoadError
from ..plugin_options import PluginOptions
from ..registry import Owner, Registries
from . import specs

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "PluginManager"]

ENTRY_POINT_GROUP = "mtlx"
DISABLE_AUTOLOAD_ENV = "MTLX_DISABLE_PLUGIN_AUTOLOAD"


@attrs.frozen
class PluginInfo:
    """One plugin as ``mtlx list`` shows it."""

    name: str
    dist: str
    version: str
    target: str
    error: PluginLoadError | None = None

    @property
    def owner(self) -> Owner:
        return Owner(self.dist, self.version if self.dist != "<local>" else "", self.name)


def _looks_like_ours(group: str) -> bool:
    """``mtlx.plugins``, ``mtlx_plugins``, ``MTLX``, ``mtl``: a group someone meant to be ``mtlx``."""
    folded = re.sub(r"[^a-z0-9]", "", group.lower())
    return group != ENTRY_POINT_GROUP and (
        folded.startswith(ENTRY_POINT_GROUP) or bool(difflib.get_close_matches(folded, [ENTRY_POINT_GROUP], cutoff=0.75))
    )


def _misplaced(entry_points: Any) -> list[str]:
    """One line per entry point in a group that looks like ours: mtlx never loads it, so a user must be told."""
    found = []
    for group in sorted(g for g in entry_points.groups if _looks_like_ours(g)):
        for ep in entry_points.select(group=group):
            dist = f"{ep.dist.name}=={ep.dist.version}" if ep.dist is not None else "<unknown>"
            found.append(f"{ep.name!r} = {ep.value} of {dist} is in group {group!r}")
    return found


class PluginManager:
    """Loads mtlx plugins and builds the component registries from them.

    There is no process-wide manager: each ``mtlx`` command line makes one (:func:`mtlx.cli.plugin_manager`,
    with its ``--plugin``/``--no-plugin``) and passes it, or its registries, to everything it builds, as pytest
    passes ``config.pluginmanager``. The Python API (``mtlx.MTL``, :mod:`mtlx.build`, :mod:`mtlx_testing`) takes
    ``registries=`` and loads a fresh manager where none is given, so no state outlives a call.

    Args:
        autoload: load installed entry points (off with ``MTLX_DISABLE_PLUGIN_AUTOLOAD=1``).
        blocked: entry-point names not to load (``--no-plugin NAME``).
        modules: extra plugin modules to import by dotted name (``--plugin MODULE``).
    """

    def __init__(self, *, autoload: bool | None = None, blocked: Iterable[str] = (), modules: Iterable[str] = ()):
        if autoload is None:
            autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
        self._pm = pluggy.PluginManager("mtlx")
        self._pm.add_hookspecs(specs)
        self.blocked = frozenset(blocked)
        self.plugins: dict[str, PluginInfo] = {}
        #: entry points under a group that looks like ``mtlx`` but is not (never loaded), one line each
        self.misplaced: list[str] = []
        self._registries: Registries | None = None
        if autoload:
            entry_points = importlib.metadata.entry_points()
            self.misplaced = _misplaced(entry_points)
            for ep in entry_points.select(group=ENTRY_POINT_GROUP):
                if ep.name not in self.blocked:
                    dist, version = (ep.dist.name, ep.dist.version) if ep.dist is not None else ("<unknown>", "?")
                    self._load(ep.name, dist, version, ep.value, ep.load)
        for module in modules:
            self._load(module, "<local>", "", module, lambda m=module: importlib.import_module(m))

    @property
    def broken(self) -> dict[str, PluginLoadError]:
        return {name: info.error for name, info in self.plugins.items() if info.error is not None}

    def _load(self, name: str, dist: str, version: str, target: str, load: Any) -> None:
        if name in self.plugins:
            other = self.plugins[name]
            error = PluginError(
                f"plugin name {name!r} is used by {other.dist}=={other.version} and by {dist}=={version}; "
                f"only the first is loaded: uninstall one of them (--no-plugin {name} blocks both)"
            )
            self._mark_broken(f"{name} ({dist})", dist, version, target, error)  # the loaded one keeps its record
            return
        try:
            self._pm.register(load(), name=name)
            self._pm.check_pending()  # a misspelt mtlx_* hook
        except Exception as error:  # noqa: BLE001 - any plugin failure is reported, never fatal
            if self._pm.has_plugin(name):
                self._pm.unregister(name=name)
            self._mark_broken(name, dist, version, target, error)
            return
        self.plugins[name] = PluginInfo(name, dist, version, target)

    def _mark_broken(self, name: str, dist: str, version: str, target: str, cause: BaseException,
                     hook: str | None = None, *, warn: bool = True) -> PluginLoadError:
        error = PluginLoadError(name, f"{dist}=={version}" if version else dist, target, cause, hook)
        if warn:
            warnings.warn(str(error), RuntimeWarning, stacklevel=3)
        self.plugins[name] = PluginInfo(name, dist, version, target, error)
        return error

    def call(self, hook: str, arguments: Callable[[PluginInfo], Mapping[str, Any]] | None = None, *,
             required: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Call ``hook`` of every plugin that implements it, each on its own (in pluggy's order): ``{plugin name:
        what it returned}``; ``arguments(plugin)`` adds arguments of that plugin's own (its scratch registries).

        The one policy for a plugin hook that raises, whichever hook it is: the plugin is marked broken with a
        :class:`~mtlx.errors.PluginLoadError` (one line: the plugin, its distribution and target, the hook, the
        cause), it is unregistered so none of its hooks fires again, and the other plugins go on. Where the
        caller cannot go on without every plugin's answer (``required``: a run's ``mtlx_engine_created``), that
        error is raised (exit 3); elsewhere it is a warning, ``mtlx list`` lists it, and a command that needs
        what the plugin provides ends with it.
        """
        results: dict[str, Any] = {}
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):  # pluggy calls the last registered first
            info = self.plugins[impl.plugin_name]
            given = {**kwargs, **(arguments(info) if arguments is not None else {})}
            try:
                results[info.name] = impl.function(**{name: given[name] for name in impl.argnames})
            except Exception as cause:  # one plugin's failure is reported, never another's
                error = self._mark_broken(info.name, info.dist, info.version, info.target, cause, hook,
                                          warn=not required)
                self._pm.unregister(name=info.name)
                if required:
                    raise error from cause
        return results

    def register_object(self, plugin: object, name: str) -> None:
        """Register an in-process plugin object (tests, notebooks); rebuilds the registry."""
        self._load(name, "<local>", "", repr(plugin), lambda: plugin)
        self._registries = None

    @property
    def registries(self) -> Registries:
        """The component registries, built on first use by calling each plugin's ``mtlx_register``.

        Each plugin registers into scratch registries that are merged only when
        its hook returned: a plugin that fails half-way contributes nothing, its
        other hooks are unregistered, and every component it declares (in
        ``registry.toml`` or registered before failing) is reported as
        unavailable with the cause. A name two plugins register is kept for both
        (``distribution:name`` picks one). The plugins' config sections (``mtlx_addoption``) are collected next
        into ``sections``; a plugin whose ``mtlx_addoption`` raises is broken in the same way.
        """
        if self._registries is None:
            registries = Registries(misplaced=list(self.misplaced))
            scratch: dict[str, Registries] = {}

            def own_registry(info: PluginInfo) -> dict[str, Any]:
                scratch[info.name] = Registries(owner=info.owner)
                return {"registry": scratch[info.name]}

            self.call("mtlx_register", own_registry)
            self.call("mtlx_addoption", lambda info: {"options": PluginOptions(info.owner, registries.sections)})
            for section in [s for s in registries.sections.values() if self.plugins[s.owner.plugin].error]:
                del registries.sections[section.name]  # of a plugin whose mtlx_addoption raised after adding it
            for name, theirs in scratch.items():  # a plugin broken in either hook contributes no component
                error = self.plugins[name].error
                if error is not None:
                    registries.mark_unavailable(theirs.kinds, error)
                else:
                    registries.merge(theirs)
            for entry in load_catalog():
                error = self.broken.get(entry.entry_point)
                if error is not None:
                    registries.mark_unavailable(entry.provides, error)
                    registries.catalogued.add(entry.entry_point)  # what it provides is known: not an unknown name
            registries.broken.update(self.broken)
            self._registries = registries
        return self._registries

