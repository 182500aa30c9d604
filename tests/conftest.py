"""Core test fixtures: the toy plugin, a CLI runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from mtlx_testing import invoke_cli


@pytest.fixture
def cli():
    """Invoke ``mtlx`` with the toy plugin loaded: ``cli("run", "-d", "toy", ...)``."""

    def invoke(*args: str, toy: bool = True, plugins=None):
        prefix = ["--plugin", "mtlx_testing.plugin"] if toy else []
        return invoke_cli(*prefix, *args, plugins=plugins)

    return invoke


@pytest.fixture
def catalogue(tmp_path, monkeypatch) -> Callable[..., None]:
    """Use a one-plugin ``registry.toml`` for the test: ``catalogue("fancy", strategies=["fancy-a"])``."""

    def write(key: str, *, distribution: str | None = None, **provides: Sequence[str]) -> None:
        lines = [f"[plugins.{key}]", f'dir = "plugins/{key}"', f'distribution = "{distribution or "mtlx-" + key}"',
                 f'entry_point = "{key}"', *(f"provides.{kind} = {list(names)!r}".replace("'", '"')
                                             for kind, names in provides.items()), "extras = []"]
        path = tmp_path / "registry.toml"
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("MTLX_REGISTRY", str(path))

    return write
