"""Fake installed distributions: a package and its ``.dist-info`` on ``sys.path``, found by importlib.metadata.

What pip leaves behind for an installed plugin, without pip: the entry points, the metadata and the
module are the real files importlib reads, so the plugin manager loads them as it loads any plugin.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence

import pytest


@pytest.fixture
def distribution(tmp_path, monkeypatch) -> Iterator[Callable[..., None]]:
    """``distribution("wine-mt", "wine_mt", source)`` installs ``wine_mt/plugin.py`` as the ``mtlx`` entry point
    ``wine-mt = wine_mt.plugin`` of distribution wine-mt 0.1.0 (``group``, ``entry_point``, ``target`` and
    ``requires`` change what is declared)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(dist: str, module: str, source: str, *, entry_point: str | None = None, group: str = "mtlx",
                target: str | None = None, version: str = "0.1.0", requires: Sequence[str] = ()) -> None:
        (site / module).mkdir()
        (site / module / "__init__.py").write_text("")
        (site / module / "plugin.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        metadata = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}",
                    *(f"Requires-Dist: {r}" for r in requires)]
        (info / "METADATA").write_text("\n".join(metadata) + "\n")
        (info / "entry_points.txt").write_text(f"[{group}]\n{entry_point or dist} = {target or module + '.plugin'}\n")
        modules.append(module)
        importlib.invalidate_caches()

    yield install
    for name in [m for m in sys.modules if m.split(".")[0] in modules]:
        del sys.modules[name]
