"""Training on CUDA: one step, AMP fp16/bf16, two-process DDP over NCCL, per-task gradients (marker ``gpu``).

What a CPU cannot show: that every tensor the engine hands to a collective or
to the GradScaler lives on the GPU, that NCCL accepts them, and that the
two-stage per-task gradient (the CUDA default) equals the per-loss loop there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtlx.checkpoint import load_checkpoint
from mtlx.gradients import per_task_grads
from mtlx_testing import ToyModel, invoke_cli, toy_batch, toy_tasks

pytestmark = pytest.mark.gpu

TOY = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-q"]


def _run(out: Path, device: torch.device, *args: str) -> dict:
    result = invoke_cli(*TOY, "--device", device.type, "--out", out, *args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["engine"]["model"]


@pytest.mark.parametrize("strategy", ["toy-weighted", "mgda", "rep-mtl"])
def test_training_on_the_device_matches_the_cpu(tmp_path, device, strategy):
    on_device = _run(tmp_path / "device", device, "-s", strategy, "--max-steps", "6")
    on_cpu = _run(tmp_path / "cpu", torch.device("cpu"), "-s", strategy, "--max-steps", "6")
    assert on_device["steps"] == on_cpu["steps"] == 6
    device_weights, cpu_weights = _weights(tmp_path / "device"), _weights(tmp_path / "cpu")
    for key, value in cpu_weights.items():
        torch.testing.assert_close(device_weights[key].cpu(), value, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("strategy", ["toy-weighted", "mgda", "rep-mtl"])
def test_mixed_precision_steps_train_with_finite_losses(tmp_path, device, precision, strategy):
    results = _run(
        tmp_path / "run", device, "-s", strategy, "--precision", precision, "--max-steps", "8", "-o", "train.log_every=1"
    )
    assert results["steps"] == 8
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [value for row in log if row["event"] == "train" for value in row["losses"].values()]
    assert len(losses) == 16 and all(torch.isfinite(torch.tensor(value)) for value in losses)
    state = load_checkpoint(tmp_path / "run" / "last.pt")["engine"]
    assert (state["scaler"] is not None) == (precision == "fp16")


def test_two_stage_per_task_gradients_equal_the_loop_on_the_device(device):
    torch.manual_seed(0)
    tasks = toy_tasks(3)
    model = ToyModel(tasks).to(device)
    inputs, targets = toy_batch(tasks, batch_size=4)
    z = model.encoder(inputs.to(device))
    losses = [tasks[t].loss(model.heads[t](z), targets[t].to(device)) for t in tasks]
    params = list(model.encoder.parameters())
    loop = per_task_grads(losses, params)
    two_stage = per_task_grads(losses, params, through=z)
    for a, b in zip(loop, two_stage, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_two_processes_equal_one_process_on_the_global_batch(tmp_path, device):
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        pytest.skip("two-process NCCL needs two GPUs (NCCL refuses two ranks on one device)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [*TOY, "-s", "mgda", "--device", device.type, "--epochs", "2"]
    single = subprocess.run([sys.executable, "-m", "mtlx", *args, "--batch-size", "4", "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                             "-m", "mtlx", *args, "--batch-size", "2", "--out", str(tmp_path / "two")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert double.returncode == 0, double.stderr
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-4
