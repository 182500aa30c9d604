"""registry.toml against the plugins themselves: what each provides and requires is typed once, checked here."""

from __future__ import annotations

import importlib.metadata
import tomllib

import pytest

from mtlx.catalog import catalog_path, load_catalog, source_root
from mtlx.hooks import PluginManager

ROOT = source_root()
CATALOG = load_catalog()
#: first-party libraries: distributions that plugins require and that register nothing
LIBRARIES = tomllib.loads(catalog_path().read_text()).get("libraries", {}) if ROOT is not None else {}
pytestmark = pytest.mark.skipif(ROOT is None, reason="registry.toml is checked from a source checkout")


def _pyproject(entry) -> dict:
    return tomllib.loads((ROOT / entry.dir / "pyproject.toml").read_text())["project"]


def _first_party(project: dict) -> set[str]:
    declared = {d.split(";")[0].split("[")[0].strip() for d in project["dependencies"]}
    return {d for d in declared if d.startswith("mtlx-")}


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.key)
def test_requires_is_the_pyprojects_first_party_dependencies(entry):
    project = _pyproject(entry)
    assert project["name"] == entry.distribution
    assert entry.entry_point in project["entry-points"]["mtlx"]
    by_key = {e.key: e.distribution for e in CATALOG} | {key: lib["distribution"] for key, lib in LIBRARIES.items()}
    requires = tomllib.loads(catalog_path().read_text())["plugins"][entry.key].get("requires", [])  # for nox
    assert _first_party(project) == {by_key[key] for key in requires}


@pytest.mark.parametrize("key", sorted(LIBRARIES))
def test_a_library_is_a_distribution_with_no_entry_point_and_no_first_party_dependency(key):
    """A library registers nothing (so ``mtlx list`` never lists it) and sits below every plugin."""
    library = LIBRARIES[key]
    project = tomllib.loads((ROOT / library["dir"] / "pyproject.toml").read_text())["project"]
    assert project["name"] == library["distribution"]
    assert "mtlx" not in project.get("entry-points", {}) and "entry_point" not in library
    assert _first_party(project) == set() and "provides" not in library


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.key)
def test_provides_is_what_the_plugin_registers(entry):
    """Components per registry kind, and the CLI commands it adds through ``mtlx_commands``."""
    try:
        dist = importlib.metadata.distribution(entry.distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{entry.distribution} is not installed in this environment")
    (point,) = [ep for ep in dist.entry_points if ep.group == "mtlx" and ep.name == entry.entry_point]
    pm = PluginManager(autoload=False)
    pm.register_object(point.load(), entry.entry_point)
    registered = {kind: set(registry) for kind, registry in pm.registries.kinds.items() if registry.list()}
    commands = {c.name for offered in pm.call("mtlx_commands").values() for c in offered}
    if commands:
        registered["commands"] = commands
    assert pm.broken == {}
    assert registered == {kind: set(names) for kind, names in entry.provides.items()}
