"""``mtlx list``: installed components by kind, broken plugins, and what else can be installed."""

from __future__ import annotations

import fnmatch

import click
from rich.console import Console
from rich.table import Table

from ..catalog import load_catalog, source_root
from ..plugins import get_plugin_manager

KINDS = ("strategies", "datasets", "archs", "backbones", "heads")


@click.command("list")
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.argument("pattern", required=False, default="*")
def list_components(kind: str | None, pattern: str) -> None:
    """List installed components (optionally of one KIND, names matching PATTERN),
    broken plugins with their errors, and catalogued plugins not installed."""
    console = Console(soft_wrap=True)
    pm = get_plugin_manager()
    registries = pm.registries
    for name in [kind] if kind else KINDS:
        registry = registries.kinds[name]
        table = Table(title=name, title_justify="left", show_edge=False)
        table.add_column("name", style="bold")
        table.add_column("plugin")
        table.add_column("summary")
        for entry in registry.entries():
            if entry.name in registry.list(pattern):
                table.add_row(entry.name, entry.owner, entry.summary)
        console.print(table)
        console.print()
    if pm.broken:
        console.print("[bold red]broken plugins[/]")
        for name, error in pm.broken.items():
            console.print(f"  {name}: {error}", markup=False)
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
