"""`mtlx sweep`'s local executor: throughput with ``--jobs 2`` against ``--jobs 1``, and the overhead per cell.

Issue 26's targets, on the 2-core machine with single-thread runs: ``--jobs 2`` reaches >= 1.8x the throughput
of the same cells one after another, and a sweep adds <= 2 s per cell (launch, bookkeeping) beyond the runs.

Each round times, interleaved so that the machine's load falls on all of them alike: the ``CELLS`` digits runs
as plain ``mtlx run`` processes one after another (``direct``), the sweep's fixed start (``--dry-run``: imports,
validation), the sweep with ``--jobs 1`` and with ``--jobs 2`` (each into a fresh directory). From the medians:
``speedup = jobs1 / jobs2`` and ``overhead_s_per_cell = (jobs1 - dry_run - direct) / CELLS``. The two sweeps'
final weights are compared (they must be equal: the runs do not depend on what runs beside them).

    pytest benchmarks/test_bench_sweep.py --benchmark-enable -s
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtlx.checkpoint import load_checkpoint

CELLS = 4
ROUNDS = 2
SIZES = ("-o", "dataset.train_size=512", "-o", "dataset.val_size=128", "-o", "dataset.test_size=128",
         "-o", "train.epochs=2")
SWEEP = ("sweep", "-d", "digits", "-s", "ew", "--seeds", f"0-{CELLS - 1}", *SIZES, "--threads", "1")


def _mtlx(*args: object) -> float:
    """Wall seconds of ``python -m mtlx ARGS`` (which must succeed)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mtlx", *map(str, args)], check=False, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=3600)
    assert done.returncode == 0, done.stdout + done.stderr
    return time.perf_counter() - start


def _weights(sweep_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    keys = [cell["key"] for cell in json.loads((sweep_dir / "manifest.json").read_text())["cells"]]
    return {key: load_checkpoint(sweep_dir / "runs" / key / "last.pt")["engine"]["model"] for key in keys}


@pytest.mark.slow
def test_sweep_throughput_and_overhead(benchmark, tmp_path: Path) -> None:
    times: dict[str, list[float]] = {"direct": [], "dry_run": [], "jobs1": [], "jobs2": []}

    def one_round() -> None:
        n = len(times["jobs1"])
        times["direct"].append(sum(_mtlx("run", "-d", "digits", "-s", "ew", *SIZES, "--seed", seed, "--threads", 1,
                                         "-q", "--out", tmp_path / f"direct{n}-{seed}") for seed in range(CELLS)))
        times["dry_run"].append(_mtlx(*SWEEP, "--out", tmp_path / f"jobs1-{n}", "--dry-run"))
        times["jobs1"].append(_mtlx(*SWEEP, "--out", tmp_path / f"jobs1-{n}", "--jobs", 1))
        times["jobs2"].append(_mtlx(*SWEEP, "--out", tmp_path / f"jobs2-{n}", "--jobs", 2))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    one, two = _weights(tmp_path / "jobs1-0"), _weights(tmp_path / "jobs2-0")
    assert one.keys() == two.keys()
    assert all(torch.equal(one[key][name], two[key][name]) for key in one for name in one[key])
    median = {name: statistics.median(values) for name, values in times.items()}
    info = {
        "speedup_jobs2": round(median["jobs1"] / median["jobs2"], 2),
        "overhead_s_per_cell": round((median["jobs1"] - median["dry_run"] - median["direct"]) / CELLS, 2),
        "sweep_start_s": round(median["dry_run"], 2),
        **{f"{name}_s": round(value, 1) for name, value in median.items()},
        "cells": CELLS, "rounds": len(times["jobs1"]), "cpus": len(os.sched_getaffinity(0)),
    }
    benchmark.extra_info.update(info)
    print(f"\nsweep of {CELLS} digits cells, medians over rounds: " + ", ".join(f"{k}={v}" for k, v in info.items()))
