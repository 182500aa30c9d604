"""The catalogue of first-party plugins (``registry.toml``): what exists and how to install it."""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from .config import read_toml
from .errors import ConfigError

__all__ = ["CATALOG_ENV", "CatalogEntry", "load_catalog"]

CATALOG_ENV = "MTLX_REGISTRY"


@attrs.frozen
class CatalogEntry:
    key: str
    dir: str
    distribution: str
    entry_point: str
    provides: dict[str, list[str]]

    def install_command(self, source_root: Path | None) -> str:
        if source_root is not None and (source_root / self.dir).is_dir():
            return f"pip install -e {source_root / self.dir}"
        return f"pip install {self.distribution}"


def catalog_path() -> Path:
    """``$MTLX_REGISTRY`` or the ``registry.toml`` shipped with mtlx (a link to the repository's)."""
    env = os.environ.get(CATALOG_ENV)
    return Path(env) if env else Path(__file__).with_name("registry.toml")


def source_root() -> Path | None:
    """The repository root when mtlx runs from a source checkout, else None."""
    path = catalog_path().resolve().parent
    return path if (path / "plugins").is_dir() else None


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    path = path or catalog_path()
    if not path.exists():  # a copy of mtlx without the catalogue: nothing to suggest
        return []
    data = read_toml(path, "plugin catalogue")
    entries = []
    for key, body in data.get("plugins", {}).items():
        try:
            entries.append(
                CatalogEntry(
                    key=key,
                    dir=body["dir"],
                    distribution=body["distribution"],
                    entry_point=body["entry_point"],
                    provides={k: list(v) for k, v in body.get("provides", {}).items()},
                )
            )
        except KeyError as error:
            raise ConfigError(f"plugin catalogue {path}: [plugins.{key}] lacks {error}") from None
    return entries
