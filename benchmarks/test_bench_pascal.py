"""PASCAL-Context costs on a CPU: one 512x512 training sample, and the edge ODS-F meter per image.

The fixture of :mod:`mtlx_pascal.testing` is written at 400x480 (scale 10,
about the VOC image size). Measured (``extra_info``, CPU time of this
process via ``time.process_time``, robust to a busy machine; ``-s`` prints):

- ``sample-*``: decode + augment + resize of one training sample with all
  five tasks (torch single-threaded, as in a DataLoader worker);
- ``edge-meter-*``: :class:`mtlx_pascal.meters.EdgeMeter` on one 512x512
  image, with 99 (SEISM) or 15 thresholds; the prediction is the ground-truth
  boundary blurred over a few pixels plus noise, like a trained network's.

    pytest benchmarks/test_bench_pascal.py --benchmark-enable -s
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtlx_pascal.dataset import PascalContext
from mtlx_pascal.decode import edges_from_label_map
from mtlx_pascal.meters import EdgeMeter
from mtlx_pascal.testing import write_pascal
from mtlx_testing import torch_threads

ROUNDS = 3


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pascal(tmp_path_factory.mktemp("pascal") / "PASCAL_MT", scale=10)


@pytest.fixture(scope="module")
def edge_case() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(0, 5, size=(8, 8)), np.ones((64, 64), dtype=np.int64))
    gt = torch.from_numpy(edges_from_label_map(labels)).view(1, 1, 512, 512)
    blurred = F.avg_pool2d(F.max_pool2d(gt, 5, 1, 2), 5, 1, 2)  # a 5-pixel wide ridge along the boundary
    prob = (0.9 * blurred + 0.05 * torch.rand(gt.shape, generator=torch.Generator().manual_seed(0))).clamp(1e-3, 0.999)
    return torch.logit(prob), gt


def _measure(benchmark, name: str, fn: Callable[[], object], unit: str) -> None:
    cpu: list[float] = []

    def timed() -> None:
        start = time.process_time()
        fn()
        cpu.append(time.process_time() - start)

    with torch_threads(1):
        benchmark.pedantic(timed, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    best = min(cpu)
    benchmark.extra_info["cpu_s"] = round(best, 4)
    print(f"\n{name}: {1000 * best:.0f} ms CPU {unit} (best of {len(cpu)})")


@pytest.mark.parametrize("augment", [True, False], ids=["train-aug", "eval"])
def test_sample_cost(benchmark, root: Path, augment: bool) -> None:
    data = PascalContext(PascalContext.Config(augment=augment), root)
    split = data.split("train")

    def one_pass() -> None:
        for i in range(len(split)):
            image, _ = split[i]
            assert image.shape == (3, 512, 512)

    _measure(benchmark, f"sample-{'train-aug' if augment else 'eval'}", one_pass, f"per {len(split)} samples")


@pytest.mark.parametrize("thresholds", [99, 15])
def test_edge_meter_cost(benchmark, edge_case: tuple[torch.Tensor, torch.Tensor], thresholds: int) -> None:
    logits, gt = edge_case

    def one_image() -> None:
        meter = EdgeMeter(num_thresholds=thresholds)
        meter.update(logits, gt)
        assert meter.compute()["odsf"] > 0.5

    _measure(benchmark, f"edge-meter-{thresholds}", one_image, "per 512x512 image")
