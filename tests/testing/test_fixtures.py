"""The shared pytest fixtures of ``mtlx.testing.fixtures``, used the way plugin conftests use them."""

from __future__ import annotations

import torch

import mtlx
from mtlx.hooks import manager


def test_each_test_starts_without_a_cached_plugin_manager():
    """tests/conftest.py imports the autouse ``fresh_plugin_manager``: no manager is cached on entry."""
    assert manager._MANAGER is None
    assert mtlx.get_plugin_manager() is manager._MANAGER  # created on first use (and dropped after the test)


def test_single_thread_sets_one_intra_op_thread():
    """tests/testing/conftest.py imports the autouse ``single_thread``."""
    assert torch.get_num_threads() == 1


def test_mtlx_cli_runs_the_cli_in_process_with_any_argument_type(mtlx_cli, tmp_path):
    result = mtlx_cli("--plugin", "mtlx.testing.plugin", "list", "datasets")
    assert result.exit_code == 0 and "toy" in result.output
    result = mtlx_cli("--plugin", "mtlx.testing.plugin", "run", "-d", "toy", "-s", "toy-weighted", "-q",
                      "--epochs", 1, "--out", tmp_path / "run")  # an int and a Path, passed through str()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "last.pt").is_file()
