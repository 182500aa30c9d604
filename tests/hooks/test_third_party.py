"""A third-party plugin package, pip-installed from a temp dir, works through entry points.

Three distributions are built: a good one (strategies + dataset), one whose
module fails to import, one that registers a name the good one already has.
They are installed with pip into a private target directory and mtlx runs in
a subprocess with that directory on PYTHONPATH, so the test environment is
left untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD_PLUGIN = '''
import attrs, torch
import mtlx
from mtlx_testing.plugin import ToyDataset


class ThirdEW(mtlx.LossWeighting):
    """Third-party equal weighting."""

    @attrs.frozen
    class Config:
        scale: float = 1.0

    def combine(self, losses, step):
        w = torch.full_like(losses, self.config.scale)
        return (w * losses).sum(), w


class ThirdData(ToyDataset):
    """Third-party dataset."""


@mtlx.hookimpl
def mtlx_register(registry):
    registry.strategies.register("third-ew", ThirdEW)
    registry.strategies.register("third-alt", ThirdEW)
    registry.datasets.register("third-data", ThirdData)
'''

DUPLICATE_PLUGIN = '''
import mtlx
from good_mtlx_plugin.plugin import ThirdEW


@mtlx.hookimpl
def mtlx_register(registry):
    registry.strategies.register("third-alt", ThirdEW)
'''


def _package(root: Path, dist: str, module: str, ep_name: str, source: str) -> Path:
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / module / "__init__.py").write_text("")
    (pkg / module / "plugin.py").write_text(textwrap.dedent(source))
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "1.2.3"

            [project.entry-points.mtlx]
            {ep_name} = "{module}.plugin"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    return pkg


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("third_party")
    packages = [
        _package(root, "good-mtlx-plugin", "good_mtlx_plugin", "third", GOOD_PLUGIN),
        _package(root, "broken-mtlx-plugin", "broken_mtlx_plugin", "broken",
                 "import a_dependency_that_is_not_installed\n"),
        _package(root, "dup-mtlx-plugin", "dup_mtlx_plugin", "dup", DUPLICATE_PLUGIN),
    ]
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         *map(str, packages)],
        check=True,
    )
    return target


def _mtlx(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run([sys.executable, "-m", "mtlx", *args], env=env, check=False, capture_output=True, text=True,
                          timeout=300)


def test_installed_plugin_is_listed_and_broken_ones_reported(site):
    out = _mtlx(site, "list", "strategies")
    assert out.returncode == 0, out.stderr
    assert "third-ew" in out.stdout and "good-mtlx-plugin==1.2.3 (third)" in out.stdout
    assert "broken: Error loading mtlx plugin 'broken' (broken-mtlx-plugin==1.2.3" in out.stdout
    assert "a_dependency_that_is_not_installed" in out.stdout
    assert "good-mtlx-plugin:third-alt" in out.stdout and "dup-mtlx-plugin:third-alt" in out.stdout  # both owners kept
    assert "dup" not in out.stdout.partition("broken plugins")[2]


def test_installed_plugin_runs_end_to_end(site, tmp_path):
    out = _mtlx(site, "--plugin", "mtlx_testing.plugin", "run", "-s", "third-ew", "-d", "third-data",
                "-o", "strategy.scale=0.5", "--epochs", "1", "--out", str(tmp_path / "run"), "-q")
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["strategy"] == "third-ew" and results["steps"] == 4


def test_duplicate_name_is_a_clear_error_naming_both_distributions(site, tmp_path):
    out = _mtlx(site, "--plugin", "mtlx_testing.plugin", "run", "-s", "third-alt", "-d", "third-data",
                "--out", str(tmp_path / "run"))
    assert out.returncode == 3
    assert out.stderr.splitlines()[-1] == (
        "Error: strategy 'third-alt' is registered by 2 plugins, dup-mtlx-plugin==1.2.3 (dup) and "
        "good-mtlx-plugin==1.2.3 (third): name one of 'dup-mtlx-plugin:third-alt', 'good-mtlx-plugin:third-alt'"
    )
