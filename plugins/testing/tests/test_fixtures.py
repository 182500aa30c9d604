"""The shared pytest fixtures of ``mtlx_testing.fixtures``, used the way plugin conftests use them."""

from __future__ import annotations

import torch


def test_single_thread_sets_one_intra_op_thread():
    """tests/testing/conftest.py imports the autouse ``single_thread``."""
    assert torch.get_num_threads() == 1


def test_mtlx_cli_runs_the_cli_in_process_with_any_argument_type(mtlx_cli, tmp_path):
    result = mtlx_cli("--plugin", "mtlx_testing.plugin", "list", "datasets")
    assert result.exit_code == 0 and "toy" in result.output
    result = mtlx_cli("--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "toy-weighted", "-q",
                      "--epochs", 1, "--out", tmp_path / "run")  # an int and a Path, passed through str()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "last.pt").is_file()


def test_the_fixtures_without_pytest_say_which_extra_installs_it():
    """A plugin's test suite imports them; without pytest the error says what to install, not just the name."""
    import subprocess
    import sys

    code = "import sys; sys.modules['pytest'] = None; import mtlx_testing.fixtures"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        "ImportError: mtlx_testing.fixtures are pytest fixtures and need pytest: pip install mtlx-testing"
    )


def test_make_step_gives_the_step_the_epoch_a_strategy_reads():
    from mtlx_testing import ToyModel, make_step, toy_batch, toy_tasks

    tasks = toy_tasks(2)
    x, targets = toy_batch(tasks)
    step = make_step(ToyModel(tasks), x, targets, tasks, iteration=7, epoch=3)
    assert (step.iteration, step.epoch) == (7, 3)
