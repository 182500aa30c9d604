"""Helpers for testing mtlx plugins: a tiny multi-task model, toy tasks, conformance checks, the CLI in-process.

Plugin test suites import from here (and from ``mtlx``) only; the shared
pytest fixtures are in :mod:`mtlx.testing.fixtures`.
"""

from .checks import assert_strategy_state_roundtrip, finite_difference_grad
from .cli import invoke_cli
from ..threads import torch_threads
from .traversal import HeadTraversals
from .toy import ToyModel, make_step, toy_batch, toy_tasks

__all__ = [
    "HeadTraversals",
    "ToyModel",
    "assert_strategy_state_roundtrip",
    "finite_difference_grad",
    "invoke_cli",
    "make_step",
    "torch_threads",
    "toy_batch",
    "toy_tasks",
]
