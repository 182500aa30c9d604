"""Check one catalogued plugin installed with only what it declares: `python .ci/plugin_alone.py KEY`.

Run by `nox -s matrix` before the plugin's test dependencies are installed, so
an undeclared dependency fails here: the plugin must load unbroken, register
everything registry.toml says it provides (components, and the CLI commands
of ``mtlx_commands``), and build each of its strategies
with default options (or its ``example_options`` where an option is required) (a strategy that wraps another by name, like rep-mtl's
base, looks it up at build time).
"""

from __future__ import annotations

import sys

from mtlx.catalog import load_catalog
from mtlx.hooks import get_plugin_manager


def main(key: str) -> int:
    (entry,) = [e for e in load_catalog() if e.key == key]
    pm = get_plugin_manager()
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
