"""README tables that are ``mtlx report`` output, checked and regenerated from committed run records.

A table of training results in a Markdown file sits between two comments that give the exact command::

    <!-- mtlx report benchmarks/results/digits-quick --reference ew -->
    | ... the table, as `mtlx report ... --format markdown` prints it ... |
    <!-- /mtlx report -->

Paths in the command are relative to the repository root (the folder holding ``registry.toml``).
``python -m mtlx_tools.report.readme [--write] FILE...`` re-renders every block: without ``--write`` it
reports each block that differs (exit 1), with it the files are rewritten. The test suite runs the check
over every README, so a hand-edited or stale number fails CI.
"""

from __future__ import annotations

import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
from click.testing import CliRunner

from .command import report

__all__ = ["Block", "blocks", "check", "render", "repository_root"]

_BLOCK = re.compile(r"<!-- mtlx report (?P<args>[^\n]*?) -->\n(?P<body>.*?)<!-- /mtlx report -->", re.DOTALL)


@attrs.frozen
class Block:
    """One generated table: the ``mtlx report`` arguments and the text the file holds for them."""

    args: tuple[str, ...]
    body: str
    line: int


def blocks(text: str) -> Iterator[Block]:
    for match in _BLOCK.finditer(text):
        yield Block(tuple(shlex.split(match["args"])), match["body"], text.count("\n", 0, match.start()) + 1)


def repository_root(path: Path) -> Path:
    for folder in path.resolve().parents:
        if (folder / "registry.toml").is_file():
            return folder
    raise FileNotFoundError(f"{path} is not inside an mtlx repository (no registry.toml above it)")


def render(args: tuple[str, ...], root: Path) -> str:
    """What ``mtlx report ARGS --format markdown`` prints, run from ``root`` (its files go to a temp folder)."""
    with tempfile.TemporaryDirectory() as out:
        absolute = [str(root / a) if not a.startswith("-") and (root / a).exists() else a for a in args]
        result = CliRunner().invoke(report, [*absolute, "--format", "markdown", "--no-plots", "--out", out])
    if result.exit_code != 0:
        raise RuntimeError(f"mtlx report {' '.join(args)} failed (exit {result.exit_code}): {result.output}")
    return result.stdout.replace(str(root) + "/", "")


def check(path: Path, *, write: bool = False) -> list[str]:
    """The blocks of ``path`` whose table is not what their command prints now (rewritten with ``write``)."""
    text, root = path.read_text(), repository_root(path)
    stale: list[str] = []

    def regenerate(match: re.Match[str]) -> str:
        block = next(blocks(match[0]))
        fresh = render(block.args, root)
        if fresh != block.body:
            stale.append(f"{path}:{text.count(chr(10), 0, match.start()) + 1}: mtlx report {' '.join(block.args)}")
        return f"<!-- mtlx report {match['args']} -->\n{fresh}<!-- /mtlx report -->"

    new = _BLOCK.sub(regenerate, text)
    if write and new != text:
        path.write_text(new)
    return stale


def main(argv: list[str]) -> int:
    write = "--write" in argv
    stale = [line for name in argv if name != "--write" for line in check(Path(name), write=write)]
    for line in stale:
        print(f"{'rewrote' if write else 'stale'}: {line}")
    return 1 if stale and not write else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
