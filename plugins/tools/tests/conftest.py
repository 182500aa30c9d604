"""Small finished toy runs shared by the report and power-law tests (created once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mtlx_testing import invoke_cli, torch_threads
from mtlx_testing.fixtures import single_thread  # noqa: F401  (autouse pytest fixture)

from .slurm_cluster import slurm_cluster  # noqa: F401  (the session's test SLURM cluster)

#: name -> extra overrides; "a1"/"a2" are two seeds of one row, "b1" another config (lr) of the same strategy.
RUNS = {"a1": ("train.seed=1",), "a2": ("train.seed=2",), "b1": ("train.seed=1", "train.lr=0.01")}


@pytest.fixture(scope="session")
def toy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run directories of 1-epoch toy runs (32 channels, so the encoder's spectra can be fitted)."""
    from mtlx.cli import main

    root = tmp_path_factory.mktemp("runs")
    runner = CliRunner()
    with torch_threads(1):  # tiny convolutions: more threads only add contention on a shared CPU
        for name, overrides in RUNS.items():
            args = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "toy-weighted", "--epochs", "1",
                    "--out", str(root / name), "-q", "-o", "train.log_every=1", "-o", "arch.channels=32"]
            for override in overrides:
                args += ["-o", override]
            result = runner.invoke(main, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
    return {name: root / name for name in RUNS}


@pytest.fixture
def cli():
    """Invoke ``mtlx`` with the core's toy plugin loaded (the toy runs' arch and dataset) unless ``toy=False``."""
    return lambda *args, toy=True: invoke_cli(*(["--plugin", "mtlx_testing.plugin"] if toy else []), *args)
