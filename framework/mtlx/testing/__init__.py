"""Helpers for testing mtlx plugins: a tiny multi-task model, toy tasks and conformance checks.

Plugin test suites import from here (and from ``mtlx``) only.
"""

from .checks import assert_strategy_state_roundtrip, finite_difference_grad
from .toy import ToyModel, make_step, toy_batch, toy_tasks

__all__ = [
    "ToyModel",
    "assert_strategy_state_roundtrip",
    "finite_difference_grad",
    "make_step",
    "toy_batch",
    "toy_tasks",
]
