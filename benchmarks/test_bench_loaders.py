"""Loader throughput (samples/s) of the dense dataset plugins at full resolution, with 0 and 2 workers.

Fixtures in the exact release formats are written once per module:
NYUv2 at 288x384 (augmented, as the paper preset), Cityscapes at 128x256
(the paper's release, no augmentation) and GTA5 frames at 1914x1052 PNG
(resized to the Cityscapes resolution, augmented). One epoch of the train
split through :func:`mtlx.data.make_loader` (batch 8, shuffled) is timed;
the best of ``ROUNDS`` epochs gives ``samples_per_s`` (wall clock) in the
benchmark's ``extra_info``, plus ``cpu_ms_per_sample`` with 0 workers (CPU
time of the loading process, robust to a busy machine); ``-s`` prints them.

    pytest benchmarks/test_bench_loaders.py --benchmark-enable -s
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlx.data import make_loader
from mtlx_cityscapes.cityscapes import Cityscapes
from mtlx_cityscapes.gta5 import GTA5
from mtlx_cityscapes.labels import LABEL_TO_TRAIN_ID
from mtlx_cityscapes.testing import write_cityscapes, write_gta5_frame
from mtlx_nyuv2.dataset import NYUv2
from mtlx_nyuv2.testing import write_nyuv2

BATCH = 8
ROUNDS = 2
GTA5_SIZE = (1052, 1914)  # height, width of most GTA5 frames


def _smooth_frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like uint8 frame (smooth colour fields plus noise), so PNG sizes and decode times are realistic."""
    coarse = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, height // 64 + 1, width // 64 + 1))).float()
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0].permute(1, 2, 0)
    return np.clip(smooth.numpy() + rng.normal(0, 6, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _blocky_label_ids(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    ids = rng.choice([0, 4, *LABEL_TO_TRAIN_ID], size=(height // 32 + 1, width // 32 + 1)).astype(np.uint8)
    return np.kron(ids, np.ones((32, 32), np.uint8))[:height, :width]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("loaders")
    rng = np.random.default_rng(0)
    for number in range(1, 17):
        write_gta5_frame(
            base / "gta5", number, _blocky_label_ids(rng, *GTA5_SIZE), image=_smooth_frame(rng, *GTA5_SIZE)
        )
    return {
        "nyuv2": write_nyuv2(base / "nyuv2", n_train=32, n_val=1, size=(288, 384)),
        "cityscapes": write_cityscapes(base / "cityscapes", n_train=64, n_val=1, size=(128, 256)),
        "gta5": base / "gta5",
    }


DATASETS: dict[str, Callable[[dict[str, Path]], torch.utils.data.Dataset]] = {
    "nyuv2-288x384-aug": lambda r: NYUv2(NYUv2.Config(augment=True), r["nyuv2"]).split("train"),
    "cityscapes-128x256": lambda r: Cityscapes(Cityscapes.Config(), r["cityscapes"]).split("train"),
    "gta5-1914x1052-to-128x256-aug": lambda r: GTA5(
        GTA5.Config(augment=True, cityscapes_root=str(r["cityscapes"])), r["gta5"]
    ).split("train"),
}


def _epoch(split: torch.utils.data.Dataset, workers: int) -> int:
    seen = 0
    for images, _ in make_loader(split, batch_size=BATCH, shuffle=True, seed=0, num_workers=workers):
        seen += images.shape[0]
    return seen


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_loader_throughput(benchmark, roots: dict[str, Path], dataset: str, workers: int) -> None:
    split = DATASETS[dataset](roots)
    times: list[tuple[float, float]] = []

    def timed_epoch() -> int:
        wall, cpu = time.perf_counter(), time.process_time()
        seen = _epoch(split, workers)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
        return seen

    seen = benchmark.pedantic(timed_epoch, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert seen == len(split)
    wall, cpu = min(times)
    rate = len(split) / wall
    info = {"samples_per_s": round(rate, 1), "samples": len(split), "workers": workers}
    line = f"{dataset} workers={workers}: {rate:.1f} samples/s ({len(split)} samples, best of {len(times)} epochs)"
    if workers == 0:  # all loading happens in this process: its CPU time does not depend on the machine's load
        info["cpu_ms_per_sample"] = round(1000 * cpu / len(split), 1)
        line += f", {info['cpu_ms_per_sample']} ms CPU per sample"
    benchmark.extra_info.update(info)
    print(f"\n{line}")
