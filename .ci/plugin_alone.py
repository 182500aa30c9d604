"""Check one catalogued plugin or library installed with only what it declares: `python .ci/plugin_alone.py KEY`.

Run by `nox -s matrix` before the plugin's test dependencies are installed, so
an undeclared dependency fails here: the plugin must load unbroken, register
everything registry.toml says it provides (components, and the CLI commands
of ``mtlx_commands``), and build each of its strategies
with default options (or its ``example_options`` where an option is required) (a strategy that wraps another by name, like rep-mtl's
base, looks it up at build time). A library (``[libraries.KEY]``) must import
and register nothing: it has no ``mtlx`` entry point.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import tomllib

from mtlx.catalog import catalog_path, load_catalog
from mtlx.hooks import PluginManager


def library_alone(distribution: str) -> int:
    """The library imports with only what it declares and offers no ``mtlx`` entry point."""
    importlib.import_module(distribution.replace("-", "_"))
    points = [ep.name for ep in importlib.metadata.distribution(distribution).entry_points if ep.group == "mtlx"]
    if points:
        print(f"{distribution} alone: a library registers nothing, but it has mtlx entry points {points}",
              file=sys.stderr)
        return 1
    print(f"{distribution} alone: imports and registers nothing")
    return 0


def main(key: str) -> int:
    libraries = tomllib.loads(catalog_path().read_text()).get("libraries", {})
    if key in libraries:
        return library_alone(libraries[key]["distribution"])
    (entry,) = [e for e in load_catalog() if e.key == key]
    pm = PluginManager()
    problems = [f"plugin {name} is broken: {error}" for name, error in pm.broken.items()]
    registries = pm.registries
    commands = {c.name for offered in pm.call("mtlx_commands").values() for c in offered}
    for kind, names in entry.provides.items():
        offered = commands if kind == "commands" else registries.kinds[kind]
        problems += [f"{kind} {name!r} is not {'offered' if kind == 'commands' else 'registered'}"
                     for name in names if name not in offered]
    for name in entry.provides.get("strategies", []):
        cls = registries.strategies.get(name)
        try:
            tasks = ("a", "b")
            cls.from_registries(cls.Config(**cls.example_options(tasks)), tasks=tasks, registries=registries)
        except Exception as error:  # noqa: BLE001 - every failure is reported
            problems.append(f"strategy {name!r} does not build with defaults: {type(error).__name__}: {error}")
    for line in problems:
        print(f"{entry.distribution} alone: {line}", file=sys.stderr)
    if not problems:
        print(f"{entry.distribution} alone: loads, registers {dict(entry.provides)} and builds its strategies")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
