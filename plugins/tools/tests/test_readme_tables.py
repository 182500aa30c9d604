"""Every README table of training results is what its `mtlx report` command prints from the committed records."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from mtlx_tools.report.readme import blocks, check, render

ROOT = Path(__file__).resolve().parents[3]
READMES = sorted(p for p in ROOT.glob("**/*.md") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def test_every_readme_table_is_what_its_command_prints():
    generated = {p: list(blocks(p.read_text())) for p in READMES}
    assert sum(map(len, generated.values())) >= 1, "no generated table found: the check would pass vacuously"
    stale = [line for path in READMES if generated[path] for line in check(path)]
    assert not stale, "README tables differ from `mtlx report` on the committed records; regenerate them with " \
                      "`python -m mtlx_tools.report.readme --write FILE`:\n" + "\n".join(stale)


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
