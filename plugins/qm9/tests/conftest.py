"""Small QM9 sources: the first rows of qm9pack's own CSV (real molecules, the exact format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlx_qm9.source import CSV_FILES, package_data_dir
from mtlx_testing.fixtures import single_thread  # noqa: F401  (autouse pytest fixture)


def write_source(directory: Path, molecules: int) -> Path:
    """Copy the header and the first ``molecules`` rows of ``qm9_part1.csv`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    with (package_data_dir() / CSV_FILES[0]).open() as source:
        lines = [next(source) for _ in range(molecules + 1)]
    (directory / CSV_FILES[0]).write_text("".join(lines))
    return directory


@pytest.fixture(scope="session")
def small_source(tmp_path_factory) -> Path:
    """60 molecules, including numbers 23 and 24 whose SMILES atom order does not fit their geometry."""
    return write_source(tmp_path_factory.mktemp("qm9-source"), 60)
