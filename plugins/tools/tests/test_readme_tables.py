"""Every README table of training results is what its `mtlx report` command prints from the committed records."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mtlx.hooks import PluginManager
from mtlx_tools.report.readme import Block, blocks, check, render

ROOT = Path(__file__).resolve().parents[3]
READMES = sorted(p for p in ROOT.glob("**/*.md") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


BLOCKS = [(path, block) for path in READMES for block in blocks(path.read_text())]


def test_the_readmes_hold_generated_tables():
    assert BLOCKS, "no generated table found: the check would pass vacuously"


def _not_installed(block: Block) -> list[str]:
    """The components the block's records ran that no installed plugin offers (the matrix's plugin-alone
    targets): their defaults are unknown there, so ``mtlx report`` labels the rows otherwise than the README."""
    offered = PluginManager().registries.by_section
    missing: set[str] = set()
    for arg in (a for a in block.args if not a.startswith("-") and (ROOT / a).is_dir()):
        for config in (ROOT / arg).rglob("config.toml"):
            recorded = tomllib.loads(config.read_text())
            missing |= {f"{section} {recorded[section]['name']!r}" for section in offered
                        if section in recorded and recorded[section].get("name") not in offered[section]}
    return sorted(missing)


@pytest.mark.parametrize(("path", "block"), BLOCKS, ids=[f"{p.relative_to(ROOT)}:{b.line}" for p, b in BLOCKS])
def test_every_readme_table_is_what_its_command_prints(path: Path, block: Block):
    if missing := _not_installed(block):
        pytest.skip(f"not installed here: {', '.join(missing)} (the rows' labels need their defaults)")
    assert render(block.args, ROOT) == block.body, (
        f"{path}:{block.line}: the table differs from `mtlx report {' '.join(block.args)}` on the committed "
        f"records; regenerate it with `python -m mtlx_tools.report.readme --write {path.relative_to(ROOT)}`")


def _fake_repository(tmp_path: Path, runs: dict[str, Path]) -> Path:
    (tmp_path / "registry.toml").write_text("")
    for name in ("a1", "a2", "b1"):
        shutil.copytree(runs[name], tmp_path / "results" / name)
    table = render(("results",), tmp_path)
    readme = tmp_path / "docs" / "README.md"
    readme.parent.mkdir()
    readme.write_text(f"# Results\n\n<!-- mtlx report results -->\n{table}<!-- /mtlx report -->\n\nText after.\n")
    return readme


def test_a_deliberately_edited_number_fails_and_write_restores_it(toy_runs, tmp_path):
    readme = _fake_repository(tmp_path, toy_runs)
    assert check(readme) == []
    original = readme.read_text()
    first_number = re.search(r"\d\.\d{3}", original)
    edited = original[: first_number.start()] + "9.999" + original[first_number.end():]
    readme.write_text(edited)
    assert check(readme) == [f"{readme}:3: mtlx report results"]
    command = [sys.executable, "-m", "mtlx_tools.report.readme", str(readme)]
    checked = subprocess.run(command, capture_output=True, text=True)
    assert checked.returncode == 1 and "stale" in checked.stdout
    assert readme.read_text() == edited  # a check changes nothing
    assert subprocess.run([*command, "--write"], capture_output=True, text=True).returncode == 0
    assert readme.read_text() == original
