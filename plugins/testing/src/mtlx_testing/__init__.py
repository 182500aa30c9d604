"""Helpers for testing mtlx plugins: conformance checks per component kind, a tiny multi-task model, the CLI.

Plugin test suites import from here (and from ``mtlx``) only; the shared
pytest fixtures are in :mod:`mtlx_testing.fixtures`.
"""

from mtlx.threads import torch_threads

from .checks import assert_strategy_state_roundtrip, flat, task_gradients
from .cli import assert_refused_at_start_up, assert_resume_is_exact, engine_states_on_one_and_two_processes, invoke_cli
from .conformance import check_backbone, check_dataset, check_meter, check_options, check_strategy
from .toy import EncoderHeads, ToyModel, make_step, toy_batch, toy_tasks
from .traversal import HeadTraversals

__all__ = [
    "EncoderHeads",
    "HeadTraversals",
    "ToyModel",
    "assert_refused_at_start_up",
    "assert_resume_is_exact",
    "assert_strategy_state_roundtrip",
    "check_backbone",
    "check_dataset",
    "check_meter",
    "check_options",
    "check_strategy",
    "engine_states_on_one_and_two_processes",
    "flat",
    "invoke_cli",
    "make_step",
    "task_gradients",
    "torch_threads",
    "toy_batch",
    "toy_tasks",
]
