"""The GPU tests: ``nox -s gpu`` (or ``pytest -m gpu``) on a machine with CUDA.

``MTLX_TEST_DEVICE=cpu pytest -m gpu`` runs the same tests on the CPU (gloo
instead of NCCL), so a test broken by a change is found without a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch

DEVICE_ENV = "MTLX_TEST_DEVICE"


@pytest.fixture
def device() -> torch.device:
    name = os.environ.get(DEVICE_ENV, "cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"needs CUDA (this machine has none; {DEVICE_ENV}=cpu runs the test's logic on the CPU)")
    return torch.device(name)
