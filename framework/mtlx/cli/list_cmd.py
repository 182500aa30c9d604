"""``mtlx list``: installed components by kind, broken plugins, and what else can be installed.

Every text that comes from a plugin (names, docstrings, errors) is printed as
it is, never read as rich markup: a summary with ``[tasks]`` in it keeps it.
"""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..catalog import load_catalog, source_root
from ..errors import UnknownComponentError, did_you_mean
from ..option_docs import describe_options
from ..registry import Entry
from .context import plugin_manager

KINDS = ("strategies", "datasets", "archs", "backbones", "heads")


@click.command("list")
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.argument("pattern", required=False, default="*")
@click.option("--details", "details", metavar="NAME",
              help="Show NAME's options (type, default, doc) and settings; NAME may be a plugin's config section.")
def list_components(kind: str | None, pattern: str, details: str | None) -> None:
    """List installed components (optionally of one KIND, names matching PATTERN),
    broken plugins with their errors, and catalogued plugins not installed.

    \b
      mtlx list --details rep-mtl          # options, presets of a component
      mtlx list datasets --details qm9     # only the dataset of that name
      mtlx list --details SECTION          # a plugin's own config section (mtlx_addoption)
    """
    console = Console(soft_wrap=True)
    pm = plugin_manager()
    registries = pm.registries
    if details is not None:
        _print_details(console, registries, details, [kind] if kind else list(KINDS))
        return
    for name in [kind] if kind else KINDS:
        registry = registries.kinds[name]
        table = Table(title=name, title_justify="left", show_edge=False)
        table.add_column("name", style="bold", no_wrap=True)  # what to type and whose: never broken over lines
        table.add_column("plugin", no_wrap=True)
        table.add_column("summary")
        for listed, entry in registry.listing(pattern):  # a name two plugins register: once per owner, qualified
            table.add_row(Text(listed), Text(entry.owner), Text(entry.summary))
        console.print(table)
        console.print()
    sections = [s for s in registries.sections.values() if kind is None and fnmatch.fnmatch(s.name, pattern)]
    if sections:
        table = Table(title="config sections of plugins (-o SECTION.KEY=VALUE)", title_justify="left", show_edge=False)
        for column in ("section", "plugin", "summary"):
            table.add_column(column, no_wrap=column != "summary")
        for section in sorted(sections, key=lambda s: s.name):
            summary = Entry(section.name, section.config, section.owner).summary  # its docstring's first line
            table.add_row(Text(section.name), Text(str(section.owner)), Text(summary))
        console.print(table)
        console.print()
    if pm.broken:
        console.print("[bold red]broken plugins[/]")
        for name, error in pm.broken.items():
            console.print(f"  {name}: {error}", markup=False)
        console.print()
    if pm.misplaced:
        console.print("[bold red]entry points mtlx does not read[/] (the group must be 'mtlx'):")
        for line in pm.misplaced:
            console.print(f"  {line}", markup=False)
        console.print()
    installed = {info.dist for info in pm.plugins.values()}
    missing = [
        e for e in load_catalog()
        if e.distribution not in installed
        and any(fnmatch.fnmatch(n, pattern) for k, names in e.provides.items() if kind in (None, k) for n in names)
    ]
    if missing:
        root = source_root()
        console.print("[bold]available, not installed[/]")
        for entry in missing:
            provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in entry.provides.items())
            console.print(f"  {entry.distribution} ({provides})  ->  {entry.install_command(root)}", markup=False)


def _print_options(console: Console, config_cls: type) -> None:
    """The table of ``config_cls``'s options: name, type or choices, default and doc."""
    table = Table(show_edge=False)
    for column in ("option", "type / choices", "default", "doc"):
        table.add_column(column, overflow="fold")
    for option in describe_options(config_cls):
        doc = Text(option.doc) if option.doc else Text("(undocumented)", style="red")
        table.add_row(*(Text(cell) for cell in (option.name, option.type, option.default)), doc)
    console.print(table)


def _print_details(console: Console, registries: Any, name: str, kinds: list[str]) -> None:
    """Each component called ``name`` among ``kinds``: its options, recommended settings and presets; or the
    plugin-owned config section ``name`` (with no kind given)."""
    found = [(kind, entry) for kind in kinds for entry in registries.kinds[kind].owners(name)]
    section = registries.sections.get(name) if len(kinds) > 1 else None
    if section is not None:
        console.print(Text(f"config section [{section.name}]  {section.owner}", style="bold"))
        console.print(f"set with -o {section.name}.KEY=VALUE or a [{section.name}] table in --config", markup=False)
        _print_options(console, section.config)
        console.print()
    if not found and section is None:
        for kind in kinds:  # a component of a broken plugin: its lookup raises the plugin's error
            if name in registries.kinds[kind].unavailable:
                registries.kinds[kind].entry(name)
        known = sorted({n for kind in kinds for n in registries.kinds[kind]} | set(registries.sections))
        raise UnknownComponentError(f"no component {name!r}{did_you_mean(name, known)} (see mtlx list)")
    for kind, entry in found:
        shared = len(registries.kinds[kind].owners(entry.name)) > 1
        console.print(Text(f"{registries.kinds[kind].kind} {entry.qualified if shared else entry.name}  {entry.owner}",
                           style="bold"))
        if doc := inspect.getdoc(entry.obj):
            console.print(doc, markup=False)
        _print_options(console, entry.obj.Config)
        settings = {
            "recommended (applied unless set)": getattr(entry.obj, "recommended", {}),
            **{f"--preset {p}": values for p, values in getattr(entry.obj, "presets", {}).items()},
        }
        for title, values in settings.items():
            if values:
                console.print(f"{title}: " + " ".join(f"-o {k}={v}" for k, v in values.items()), markup=False)
        console.print()
